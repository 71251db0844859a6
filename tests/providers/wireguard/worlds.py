"""Resource views built by hand, as the core hands them to the WireGuard provider."""

from __future__ import annotations

from collections import defaultdict

from skyplan.sdk import ResourceView
from skyplan_wireguard import keys

SETTINGS = {
    "listen_port": 51820,
    "interface": "wgsky0",
    "mtu": None,
    "persistent_keepalive": 25,
    "address_pool": "100.96.0.0/16",
    "output_dir": "wireguard",
}


class ResourceWorld:
    """Clusters and links by address, with a private key for every local cluster."""

    def __init__(self) -> None:
        self.views: dict[str, ResourceView] = {}
        self.private: dict[str, str] = {}

    def __getitem__(self, address: str) -> ResourceView:
        return self.views[address]

    def cluster(
        self,
        name: str,
        address: str | None,
        subnets: list[str],
        *,
        endpoint: str | None = None,
        public_key: str | None = None,
        address_pin: str | None = None,
        gateway: str | None = None,
        computed_key: bool = True,
        **settings,
    ) -> ResourceView:
        attributes = {"subnets": subnets, **SETTINGS, **settings}
        for key, value in (("endpoint", endpoint), ("public_key", public_key), ("address", address_pin), ("gateway", gateway)):
            if value is not None:
                attributes[key] = value
        computed = {}
        if address is not None:
            computed["address"] = address
        if public_key is not None:
            computed["public_key"] = public_key
        elif computed_key:
            self.private[name] = keys.generate()
            computed["public_key"] = keys.public_key(self.private[name])
        view = ResourceView("cluster", name, attributes, computed)
        self.views[view.address] = view
        return view

    def link(self, name: str, source: str, target: str, *, transit_hub: str | None = None, preshared_key: bool = False) -> ResourceView:
        attributes = {"source": source, "target": target}
        if preshared_key:
            attributes["preshared_key"] = True
        if transit_hub is not None:
            attributes["transit_hub"] = transit_hub
        view = ResourceView("link", name, attributes)
        self.views[view.address] = view
        return view

    def peering(self) -> dict[str, dict[str, list[str]]]:
        found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for view in self.views.values():
            if view.type == "link":
                found[view.ends.source][view.ends.target].append(view.name)
                found[view.ends.target][view.ends.source].append(view.name)
        return found


class Workspace:
    """A provider and the resources it recorded: `converge` plans as the core does (creates,
    updates, deletes, replaces asked for, renames) and applies, keeping what apply computed."""

    def __init__(self, provider) -> None:
        self.provider = provider
        self.state: dict[str, ResourceView] = {}
        self.results: dict[str, object] = {}

    def converge(
        self, desired: ResourceWorld, *, replace: tuple[str, ...] = (), update: tuple[str, ...] = (), moved: dict[str, str] | None = None
    ) -> dict:
        from skyplan.sdk import ApplyRequest, Change, PlanRequest

        moved = moved or {}  # to address -> from address
        wanted = {address: view._replace(computed={}) for address, view in desired.views.items()}
        before = {}
        for address, view in wanted.items():
            recorded = self.state.get(moved.get(address, address))
            if recorded is not None:
                before[address] = recorded
                wanted[address] = view._replace(computed=recorded.computed)
        planned = self.provider.plan(PlanRequest(list(wanted.values()))).planned
        for address, values in planned.items():
            wanted[address] = wanted[address]._replace(computed={**wanted[address].computed, **values})
        changes = []
        gone = [v for a, v in self.state.items() if a not in {moved.get(x, x) for x in wanted}]
        for kind in ("link", "cluster"):
            changes += [Change(v.address, "delete", v, None) for v in gone if v.type == kind]
        for kind in ("cluster", "link"):
            for address, view in wanted.items():
                if view.type != kind:
                    continue
                old = before.get(address)
                if old is None:
                    changes.append(Change(address, "create", None, view))
                elif address in replace or (kind == "cluster" and ("public_key" in old.attributes) != ("public_key" in view.attributes)):
                    changes.append(Change(address, "replace", old, view))
                elif old.attributes != view.attributes or old.name != view.name or address in update:
                    changes.append(Change(address, "update", old, view))
        results = {r.address: r for r in self.provider.apply(ApplyRequest(changes, wanted))}
        self.results = results
        self.state = {}
        for address, view in wanted.items():
            computed = dict(view.computed)
            if address in results:
                computed.update(results[address].computed)
            self.state[address] = view._replace(computed=computed)
        return results
