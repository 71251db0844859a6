"""Pydantic models of links.yaml: the shape of each section, nothing about how they relate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Shared by clusters and links, by skyctl, and by the JSON Schema.
NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
NAME_RULE = (
    "1 to 63 characters of letters, digits, '-', '_' and '.', "
    "starting and ending with a letter or digit"
)


class Spec(BaseModel):
    """Base of every links.yaml model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ClusterSpec(Spec):
    name: str = Field(description=f"Cluster name: {NAME_RULE}.")
    endpoint: str = Field(description="host:port that peers dial: IPv4, [IPv6] or a DNS name.")
    subnets: list[str] = Field(default_factory=list, description="Networks behind this cluster (CIDR).")
    listen_port: int | None = Field(default=None, ge=1, le=65535, description="Overrides provider.listen_port.")


class LinkSpec(Spec):
    name: str = Field(description=f"Link name: {NAME_RULE}.")
    source: str = Field(description="Cluster at one end.")
    target: str = Field(description="Cluster at the other end.")


class MeshSpec(Spec):
    """A group of clusters joined by generated links: every pair (full) or each to a hub."""

    name: str = Field(description=f"Mesh name, the prefix of its links' names: {NAME_RULE}.")
    clusters: list[str] = Field(min_length=2, description="Member clusters.")
    topology: Literal["full", "hub"] = "full"
    hub: str | None = Field(default=None, description="The hub cluster, for topology: hub.")


class BackendSpec(Spec):
    type: Literal["local", "postgres"] = "local"
    url: str | None = Field(default=None, description="postgresql://… for type: postgres.")
    workspace: str = Field(default="default", description="Name of this state in a shared backend.")


class ProviderBlock(BaseModel):
    """`provider:`; `name` picks the plugin, the other keys are validated by that plugin's model."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    name: str = "wireguard"

    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Config(Spec):
    """A whole links.yaml, with SkyShift manifests and meshes already folded in by the loader."""

    version: Literal[1]
    provider: ProviderBlock = Field(default_factory=ProviderBlock)
    backend: BackendSpec = Field(default_factory=BackendSpec)
    clusters: list[ClusterSpec] = Field(default_factory=list)
    links: list[LinkSpec] = Field(default_factory=list)
    meshes: list[MeshSpec] = Field(default_factory=list)


TOP_LEVEL_KEYS = tuple(Config.model_fields)
