"""Pydantic models of links.yaml: the shape of each section, nothing about how they relate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skyplan.sdk.registry import DEFAULT_PROVIDER
from skyplan.sdk.resources import NAME_PATTERN, NAME_RULE  # noqa: F401 - the SDK holds the name rule; rules.py and skyctl take it from here


class Spec(BaseModel):
    """Base of every links.yaml model: unknown keys are errors, values are immutable.

    Schemas are built on first use (defer_build): commands such as `skyctl get` must start fast
    and never touch most models.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class ClusterSpec(Spec):
    """A cluster: one WireGuard interface, the endpoint its peers dial, the networks behind it.

    What an overlay address or an external peer's key means is the provider's to check
    (WireGuard: an address inside the pool, a canonical key); here they are plain text.
    """

    name: str = Field(description=f"Cluster name: {NAME_RULE}.")
    endpoint: str | None = Field(
        default=None,
        description="host:port that peers dial: IPv4, [IPv6] or a DNS name. Without one the cluster is behind NAT and only dials out.",
    )
    subnets: list[str] = Field(default_factory=list, description="Networks behind this cluster (CIDR).")
    listen_port: int | None = Field(default=None, ge=1, le=65535, description="Overrides provider.listen_port.")
    # Same bounds as the provider settings they override.
    mtu: int | None = Field(default=None, ge=576, le=65535, description="Overrides provider.mtu.")
    persistent_keepalive: int | None = Field(
        default=None, ge=0, le=65535, description="Overrides provider.persistent_keepalive (seconds; 0 turns it off)."
    )
    address: str | None = Field(default=None, description="Pins the overlay address (inside the address pool, unique).")
    gateway: str | None = Field(
        default=None,
        description="The live WireGuard host skyplan manages over SSH: ssh://[user@]host[:port] or a Host alias of the ssh config.",
    )
    public_key: str | None = Field(
        default=None,
        description="An external peer: its keys and config are managed elsewhere; skyplan writes nothing for it, its peers hold this key.",
    )


class LinkSpec(Spec):
    """A bidirectional WireGuard peering between two clusters; source and target only name the ends."""

    name: str = Field(description=f"Link name: {NAME_RULE}.")
    source: str = Field(description="Cluster at one end.")
    target: str = Field(description="Cluster at the other end.")
    preshared_key: bool | None = Field(
        default=None, description="A WireGuard preshared key for this peering; default: provider.preshared_keys."
    )


class MeshSpec(Spec):
    """A group of clusters joined by generated links: every pair (full) or each to a hub."""

    name: str = Field(description=f"Mesh name, the prefix of its links' names: {NAME_RULE}.")
    clusters: list[str] = Field(min_length=2, description="Member clusters.")
    topology: Literal["full", "hub"] = Field(
        default="full", description="full: a link between every pair; hub: a link from each cluster to the hub."
    )
    hub: str | None = Field(default=None, description="The hub cluster, for topology: hub.")
    transit: bool = Field(
        default=False,
        description="With topology: hub, the spokes reach each other (addresses and subnets) through the hub.",
    )


ADDRESS_PATTERN = r"^(cluster|link)\.[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"


class MovedSpec(Spec):
    """A rename without churn: the resource at `from` in the state is the one now declared at `to`."""

    # `from` is a Python keyword: the field has another name, and the file spells it `from`.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True, populate_by_name=True)
    from_: str = Field(alias="from", description="Address the resource had: cluster.NAME or link.NAME.")
    to: str = Field(description="Address it has now, declared in this file; the same type as `from`.")


class BackendSpec(Spec):
    """Where the state is kept."""

    type: Literal["local", "postgres"] = Field(
        default="local", description="local: .skyplan/state.json next to links.yaml; postgres: a PostgreSQL table."
    )
    url: str | None = Field(default=None, description="postgresql://… for type: postgres.")
    workspace: str = Field(default="default", description="Name of this state in a shared backend.")


class ProviderBlock(BaseModel):
    """`provider:`; `name` picks the plugin, the other keys are validated by that plugin's model."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True, defer_build=True)
    name: str = DEFAULT_PROVIDER

    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Config(Spec):
    """A whole links.yaml, with SkyShift manifests and meshes already folded in by the loader."""

    version: Literal[1] = Field(description="Format of this file; 1.")
    provider: ProviderBlock = Field(default_factory=ProviderBlock, description="The provider and its settings.")
    backend: BackendSpec = Field(default_factory=BackendSpec, description="Where the state is kept; default: local.")
    clusters: list[ClusterSpec] = Field(default_factory=list, description="The clusters to connect.")
    links: list[LinkSpec] = Field(default_factory=list, description="Links, each between two clusters.")
    meshes: list[MeshSpec] = Field(default_factory=list, description="Groups of clusters joined by generated links.")
    moved: list[MovedSpec] = Field(
        default_factory=list, description="Renames without churn: key, address and peerings follow the resource."
    )


TOP_LEVEL_KEYS = tuple(Config.model_fields)
