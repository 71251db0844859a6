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
    return _Recording(provider_cls, settings).cluster(spec)


def link_attributes(spec: LinkSpec, provider_cls: type, settings: Any, transit_hub: str | None = None) -> dict[str, Any]:
    return _Recording(provider_cls, settings).link(spec, transit_hub)


class _Recording:
    """What a cluster or link entry records, with what comes from the provider and its settings
    looked up once: a configuration of 10,000 links asks 11,000 times."""

    def __init__(self, provider_cls: type, settings: Any):
        self.when_set = recorded_when_set(provider_cls)
        self.settings, self.setting_names = settings, provider_cls.cluster_settings
        self.overrides = list(provider_cls.cluster_overrides.items())
        # A link field whose default is a provider setting; recorded only when it is on, so that
        # a link that does not use it records what it recorded before the field existed.
        self.link_defaults = [(field, getattr(settings, setting, None)) for field, setting in provider_cls.link_defaults.items()]

    def cluster(self, spec: ClusterSpec) -> dict[str, Any]:
        subnets = spec.subnets
        networks = [parse_network(s) for s in subnets]
        if len(networks) > 1:
            networks.sort(key=lambda n: (n.version, n.network_address, n.prefixlen))
        attributes: dict[str, Any] = {} if spec.endpoint is None else {"endpoint": spec.endpoint}
        attributes["subnets"] = [str(n) for n in networks]
        for name in self.when_set:
            value = getattr(spec, name)
            if value is not None:
                attributes[name] = value
        settings = self.settings
        for name in self.setting_names:
            attributes[name] = getattr(settings, name)
        # A cluster field that the provider says overrides one of its settings, for this cluster.
        for field, name in self.overrides:
            value = getattr(spec, field, None)
            if value is not None:
                attributes[name] = value
        return attributes

    def link(self, spec: LinkSpec, transit_hub: str | None = None) -> dict[str, Any]:
        attributes: dict[str, Any] = {"source": spec.source, "target": spec.target}
        for field, default in self.link_defaults:
            value = getattr(spec, field, None)
            if value is None:
                value = default
            if value is not None and value is not False:
                attributes[field] = value
        if transit_hub is not None:
            attributes["transit_hub"] = transit_hub
        return attributes


def desired_resources(config: Config, provider_cls: type, settings: Any, managed_by: Owner = "file") -> dict[str, DesiredResource]:
    recording = _Recording(provider_cls, settings)
    cluster, link_attributes = recording.cluster, recording.link
    resources: dict[str, DesiredResource] = {}
    for spec in config.clusters:
        resources[f"cluster.{spec.name}"] = DesiredResource("cluster", spec.name, cluster(spec), managed_by)
    hubs = transit_hubs(config)
    for spec in config.links:
        hub = hubs.get(spec.name) if hubs else None
        if hub is not None and spec.source != hub:
            hub = None  # not the mesh's own link (names are unique, so this is a damaged config)
        resources[f"link.{spec.name}"] = DesiredResource("link", spec.name, link_attributes(spec, hub), managed_by)
    return resources
