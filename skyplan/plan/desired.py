"""Desired resources from a validated Config: what the configuration asks to exist."""

from __future__ import annotations

from typing import Any

from skyplan.config.models import ClusterSpec, Config, LinkSpec
from skyplan.config.network import parse_network
from skyplan.config.rules import transit_hubs
from skyplan.plan.model import DesiredResource
from skyplan.state.model import Owner

_FIXED = ("name", "subnets")


def recorded_when_set(provider_cls: type) -> tuple[str, ...]:
    """The cluster arguments recorded under their own names, and only when set: every field of a
    cluster entry but its name, its subnets and the provider's overrides of its settings. A
    cluster that does not use one records what it recorded before the argument existed, so old
    states still plan "No changes"."""
    overrides = provider_cls.cluster_overrides
    return tuple(name for name in ClusterSpec.model_fields if name not in _FIXED and name not in overrides)


def cluster_attributes(spec: ClusterSpec, provider_cls: type, settings: Any) -> dict[str, Any]:
    networks = sorted((parse_network(s) for s in spec.subnets), key=lambda n: (n.version, n.network_address, n.prefixlen))
    attributes: dict[str, Any] = {} if spec.endpoint is None else {"endpoint": spec.endpoint}
    attributes["subnets"] = [str(n) for n in networks]
    for name in recorded_when_set(provider_cls):
        value = getattr(spec, name)
        if value is not None:
            attributes[name] = value
    for name in provider_cls.cluster_settings:
        attributes[name] = getattr(settings, name)
    # A cluster field that the provider says overrides one of its settings, for this cluster.
    for field, name in provider_cls.cluster_overrides.items():
        value = getattr(spec, field, None)
        if value is not None:
            attributes[name] = value
    return attributes


def link_attributes(spec: LinkSpec, provider_cls: type, settings: Any, transit_hub: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"source": spec.source, "target": spec.target}
    # A link field whose default is a provider setting; recorded only when it is on, so that a
    # link that does not use it records what it recorded before the field existed.
    for field, setting in provider_cls.link_defaults.items():
        value = getattr(spec, field, None)
        if value is None:
            value = getattr(settings, setting, None)
        if value is not None and value is not False:
            attributes[field] = value
    if transit_hub is not None:
        attributes["transit_hub"] = transit_hub
    return attributes


def desired_resources(config: Config, provider_cls: type, settings: Any, managed_by: Owner = "file") -> dict[str, DesiredResource]:
    resources: dict[str, DesiredResource] = {}
    for cluster in config.clusters:
        item = DesiredResource("cluster", cluster.name, cluster_attributes(cluster, provider_cls, settings), managed_by)
        resources[item.address] = item
    hubs = transit_hubs(config)
    for link in config.links:
        hub = hubs.get(link.name)
        if hub is not None and link.source != hub:
            hub = None  # not the mesh's own link (names are unique, so this is a damaged config)
        item = DesiredResource("link", link.name, link_attributes(link, provider_cls, settings, hub), managed_by)
        resources[item.address] = item
    return resources
