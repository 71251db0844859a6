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
    # The links.yaml cluster entry's arguments, checked by ClusterSpec once mapped to one.
    endpoint: str | None = None
    subnets: list[str] = Field(default_factory=list)
    listen_port: int | None = None
    mtu: int | None = None
    persistent_keepalive: int | None = None
    address: str | None = None
    gateway: str | None = None
    public_key: str | None = None


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
_OPTIONAL_CLUSTER_FIELDS = tuple(name for name in ClusterManifestSpec.model_fields if name != "subnets")
CLUSTER_FIELD_PATHS = {
    "name": ("metadata", "name"),
    "subnets": ("spec", "subnets"),
    **{name: ("spec", name) for name in _OPTIONAL_CLUSTER_FIELDS},
}


def link_entry(manifest: LinkManifest) -> dict[str, Any]:
    return {
        "name": manifest.metadata.name,
        "source": manifest.spec.source_cluster,
        "target": manifest.spec.target_cluster,
    }


def cluster_entry(manifest: ClusterManifest) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": manifest.metadata.name, "subnets": list(manifest.spec.subnets)}
    for name in _OPTIONAL_CLUSTER_FIELDS:
        value = getattr(manifest.spec, name)
        if value is not None:
            entry[name] = value
    return entry
