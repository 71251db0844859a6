"""SkyShift-style manifests (`kind: Link`, `kind: Cluster`) as read from `skyctl apply -f` files."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skyplan.config.models import Spec


class Metadata(Spec):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class LinkManifestSpec(Spec):
    source_cluster: str
    target_cluster: str


class ClusterManifestSpec(Spec):
    endpoint: str
    subnets: list[str] = Field(default_factory=list)
    listen_port: int | None = None
    gateway: str | None = None


class _Manifest(BaseModel):
    # `status` is what `skyctl get -o yaml` prints; reading it back must not be an error.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)
    apiVersion: str | None = None
    metadata: Metadata
    status: Any = None


class LinkManifest(_Manifest):
    kind: Literal["Link"]
    spec: LinkManifestSpec


class ClusterManifest(_Manifest):
    kind: Literal["Cluster"]
    spec: ClusterManifestSpec


MANIFEST_KINDS: dict[str, type[_Manifest]] = {"Link": LinkManifest, "Cluster": ClusterManifest}

# How a field of the links.yaml entry maps back to a place in the manifest, for error positions.
LINK_FIELD_PATHS = {
    "name": ("metadata", "name"),
    "source": ("spec", "source_cluster"),
    "target": ("spec", "target_cluster"),
}
CLUSTER_FIELD_PATHS = {
    "name": ("metadata", "name"),
    "endpoint": ("spec", "endpoint"),
    "subnets": ("spec", "subnets"),
    "listen_port": ("spec", "listen_port"),
    "gateway": ("spec", "gateway"),
}


def link_entry(manifest: LinkManifest) -> dict[str, Any]:
    return {
        "name": manifest.metadata.name,
        "source": manifest.spec.source_cluster,
        "target": manifest.spec.target_cluster,
    }


def cluster_entry(manifest: ClusterManifest) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": manifest.metadata.name, "endpoint": manifest.spec.endpoint}
    entry["subnets"] = list(manifest.spec.subnets)
    if manifest.spec.listen_port is not None:
        entry["listen_port"] = manifest.spec.listen_port
    if manifest.spec.gateway is not None:
        entry["gateway"] = manifest.spec.gateway
    return entry
