"""Which gateways an apply reaches before it changes any: those it may change, and no others."""

from __future__ import annotations

from skyplan.sdk import ApplyRequest, Change, ResourceView
from skyplan_wireguard.provider import _gateways_in_play


def gateway_cluster(name: str, gateway: str | None = None) -> ResourceView:
    attributes = {"endpoint": f"{name}.example:51820", "subnets": [], "interface": "wgsky0", "gateway": gateway or f"gw-{name}"}
    return ResourceView("cluster", name, attributes, {"address": "100.96.0.1", "public_key": "k"})


def link(source: str, target: str) -> ResourceView:
    return ResourceView("link", f"{source}-{target}", {"source": source, "target": target})


# a star around hub h, plus x and y joined to each other only
CLUSTERS = {name: gateway_cluster(name) for name in ("h", "s1", "s2", "s3", "x", "y")}
LINKS = [link("h", "s1"), link("h", "s2"), link("h", "s3"), link("x", "y")]


def world(*extra: ResourceView, without: tuple[str, ...] = ()) -> dict[str, ResourceView]:
    views = [*CLUSTERS.values(), *LINKS, *extra]
    return {v.address: v for v in views if v.address not in without}


def reached(request: ApplyRequest) -> list[tuple[str, str]]:
    return sorted((v.name, v.attributes["gateway"]) for v in _gateways_in_play(request))


def test_a_new_link_reaches_its_two_ends_only() -> None:
    new = link("s1", "x")
    request = ApplyRequest([Change(new.address, "create", None, new)], world(new))
    assert reached(request) == [("s1", "gw-s1"), ("x", "gw-x")]


def test_a_changed_cluster_reaches_itself_and_its_peers() -> None:
    before = CLUSTERS["h"]
    after = before._replace(attributes={**before.attributes, "endpoint": "h2.example:51820"})
    request = ApplyRequest([Change(after.address, "update", before, after)], {**world(), after.address: after})
    assert [name for name, _ in reached(request)] == ["h", "s1", "s2", "s3"]


def test_a_deleted_cluster_reaches_its_own_gateway_and_its_former_peers() -> None:
    gone = CLUSTERS["y"]
    request = ApplyRequest(
        [Change("link.x-y", "delete", LINKS[3], None), Change(gone.address, "delete", gone, None)],
        world(without=("cluster.y", "link.x-y")),
    )
    assert reached(request) == [("x", "gw-x"), ("y", "gw-y")]


def test_a_cluster_moved_to_another_host_reaches_both_hosts() -> None:
    before = CLUSTERS["x"]
    after = gateway_cluster("x", "gw-new")
    request = ApplyRequest([Change(after.address, "replace", before, after)], {**world(), after.address: after})
    assert reached(request) == [("x", "gw-new"), ("x", "gw-x"), ("y", "gw-y")]


def test_local_clusters_are_not_gateways() -> None:
    local = ResourceView("cluster", "l", {"endpoint": "l.example:51820", "subnets": [], "interface": "wgsky0"}, {})
    new = link("l", "x")
    request = ApplyRequest([Change(local.address, "create", None, local), Change(new.address, "create", None, new)], world(local, new))
    assert reached(request) == [("x", "gw-x")]


def transit_link(hub: str, spoke: str) -> ResourceView:
    return ResourceView("link", f"m.{hub}.{spoke}", {"source": hub, "target": spoke, "transit_hub": hub})


TRANSIT = [transit_link("h", "s1"), transit_link("h", "s2"), transit_link("h", "s3")]


def transit_world(*extra: ResourceView, without: tuple[str, ...] = ()) -> dict[str, ResourceView]:
    views = [*CLUSTERS.values(), *TRANSIT, LINKS[3], *extra]
    return {v.address: v for v in views if v.address not in without}


def test_a_changed_transit_spoke_reaches_the_other_spokes_whose_files_route_its_networks() -> None:
    before = CLUSTERS["s1"]
    after = before._replace(attributes={**before.attributes, "subnets": ["10.1.0.0/16"]})
    request = ApplyRequest([Change(after.address, "update", before, after)], {**transit_world(), after.address: after})
    assert [name for name, _ in reached(request)] == ["h", "s1", "s2", "s3"]
    # Without transit, the other spokes' files do not hold s1's networks: not reached.
    plain = ApplyRequest([Change(after.address, "update", before, after)], {**world(), after.address: after})
    assert [name for name, _ in reached(plain)] == ["h", "s1"]


def test_a_new_transit_link_reaches_the_whole_group_and_one_that_goes_the_group_it_left() -> None:
    new = transit_link("h", "x")
    request = ApplyRequest([Change(new.address, "create", None, new)], transit_world(new))
    assert [name for name, _ in reached(request)] == ["h", "s1", "s2", "s3", "x"]
    gone = TRANSIT[2]
    request = ApplyRequest([Change(gone.address, "delete", gone, None)], transit_world(without=(gone.address,)))
    assert [name for name, _ in reached(request)] == ["h", "s1", "s2", "s3"]
