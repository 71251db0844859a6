"""Desired resources from a validated Config: what the configuration asks to exist."""

from __future__ import annotations

from typing import Any

from skyplan.config.models import ClusterSpec, Config, LinkSpec
from skyplan.config.network import parse_network
from skyplan.plan.model import DesiredResource
from skyplan.state.model import Owner


def cluster_attributes(spec: ClusterSpec, provider_cls: type, settings: Any) -> dict[str, Any]:
    networks = sorted((parse_network(s) for s in spec.subnets), key=lambda n: (n.version, n.network_address, n.prefixlen))
    attributes: dict[str, Any] = {"endpoint": spec.endpoint, "subnets": [str(n) for n in networks]}
    if spec.gateway is not None:
        # Only when set: a cluster without one records what it recorded before gateways existed.
        attributes["gateway"] = spec.gateway
    for name in provider_cls.cluster_settings:
        attributes[name] = getattr(settings, name)
    # A cluster field that the provider says overrides one of its settings, for this cluster.
    for field, name in provider_cls.cluster_overrides.items():
        value = getattr(spec, field, None)
        if value is not None:
            attributes[name] = value
    return attributes


def link_attributes(spec: LinkSpec) -> dict[str, Any]:
    return {"source": spec.source, "target": spec.target}


def desired_resources(config: Config, provider_cls: type, settings: Any, managed_by: Owner = "file") -> dict[str, DesiredResource]:
    resources: dict[str, DesiredResource] = {}
    for cluster in config.clusters:
        item = DesiredResource("cluster", cluster.name, cluster_attributes(cluster, provider_cls, settings), managed_by)
        resources[item.address] = item
    for link in config.links:
        item = DesiredResource("link", link.name, link_attributes(link), managed_by)
        resources[item.address] = item
    return resources
