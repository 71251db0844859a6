"""What a cluster's file holds in the topologies of real networks: NAT'd clusters, transit hubs,
preshared keys, external peers, pinned addresses. Built from resource views, as the core hands
them to the provider."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from skyplan.sdk import WorkspacePaths
from skyplan_wireguard import addresses, conf, keys, psk
from skyplan_wireguard.provider import WireGuardProvider
from skyplan_wireguard.settings import WireGuardSettings
from tests.providers.wireguard.worlds import ResourceWorld

PARTNER_KEY = "zB5JQz6sh4drgW28eA6b17tyU7Fue9sXv+57ZcBWgAU="


@pytest.fixture
def provider(tmp_path) -> WireGuardProvider:
    return WireGuardProvider(WireGuardSettings(), WorkspacePaths(root=tmp_path, data=tmp_path / ".skyplan"))


def hub_world(*, transit: bool = True, psk_links: tuple[str, ...] = (), direct: bool = False) -> ResourceWorld:
    """hub h (endpoint) with spokes a (endpoint) and b (behind NAT, no endpoint)."""
    world = ResourceWorld()
    world.cluster("h", "100.96.0.1", ["10.0.0.0/16"], endpoint="192.0.2.1:51820")
    world.cluster("a", "100.96.0.2", ["10.1.0.0/16"], endpoint="192.0.2.2:51820")
    world.cluster("b", "100.96.0.3", ["10.2.0.0/16", "10.3.0.0/16"])
    for spoke in ("a", "b"):
        name = f"m-h-{spoke}"
        world.link(name, "h", spoke, transit_hub="h" if transit else None, preshared_key=name in psk_links)
    if direct:
        world.link("a-b", "a", "b")
    return world


def peer(cluster_conf: conf.ClusterConf, name: str) -> conf.PeerConf:
    return next(p for p in cluster_conf.peers if p.cluster == name)


def test_a_nat_d_cluster_has_no_endpoint_in_its_peers_files_and_dials_them(provider) -> None:
    world = hub_world(transit=False)
    hub = provider._cluster_conf(world["cluster.h"], world.views, world.peering())
    assert peer(hub, "b").endpoint is None
    text = conf.render(hub, keys.generate())
    assert "Endpoint = 192.0.2.2:51820" in text and text.count("Endpoint") == 1
    spoke = provider._cluster_conf(world["cluster.b"], world.views, world.peering())
    assert peer(spoke, "h").endpoint == "192.0.2.1:51820"
    assert peer(spoke, "h").persistent_keepalive == 25  # it keeps its NAT mapping alive


def test_a_transit_spoke_routes_the_other_spokes_through_the_hub(provider) -> None:
    world = hub_world()
    a = provider._cluster_conf(world["cluster.a"], world.views, world.peering())
    assert peer(a, "h").allowed_ips == ("100.96.0.1/32", "10.0.0.0/16", "100.96.0.3/32", "10.2.0.0/16", "10.3.0.0/16")
    b = provider._cluster_conf(world["cluster.b"], world.views, world.peering())
    assert peer(b, "h").allowed_ips == ("100.96.0.1/32", "10.0.0.0/16", "100.96.0.2/32", "10.1.0.0/16")
    hub = provider._cluster_conf(world["cluster.h"], world.views, world.peering())
    assert hub.forward and not a.forward and not b.forward
    # The hub's own entries are each spoke and what lies behind it, nothing more.
    assert peer(hub, "a").allowed_ips == ("100.96.0.2/32", "10.1.0.0/16")
    text = conf.render(hub, keys.generate())
    assert "PostUp = sysctl -q -w net.ipv4.ip_forward=1\n" in text
    assert "PostUp" not in conf.render(a, keys.generate())


def test_without_transit_a_spoke_reaches_only_the_hub(provider) -> None:
    world = hub_world(transit=False)
    a = provider._cluster_conf(world["cluster.a"], world.views, world.peering())
    assert peer(a, "h").allowed_ips == ("100.96.0.1/32", "10.0.0.0/16")
    assert not provider._cluster_conf(world["cluster.h"], world.views, world.peering()).forward


def test_a_direct_peering_wins_over_the_way_through_the_hub(provider) -> None:
    world = hub_world(direct=True)
    a = provider._cluster_conf(world["cluster.a"], world.views, world.peering())
    assert peer(a, "h").allowed_ips == ("100.96.0.1/32", "10.0.0.0/16")
    assert peer(a, "b").allowed_ips == ("100.96.0.3/32", "10.2.0.0/16", "10.3.0.0/16")


def test_an_ipv6_hub_forwards_ipv6_too(provider) -> None:
    world = ResourceWorld()
    world.cluster("h", "fd00::1", [], endpoint="[2001:db8::1]:51820")
    world.cluster("a", "fd00::2", ["fd10::/48"], endpoint="[2001:db8::2]:51820")
    world.cluster("b", "fd00::3", [], endpoint="[2001:db8::3]:51820")
    world.link("h-a", "h", "a", transit_hub="h")
    world.link("h-b", "h", "b", transit_hub="h")
    hub = provider._cluster_conf(world["cluster.h"], world.views, world.peering())
    text = conf.render(hub, keys.generate())
    assert f"PostUp = {conf.FORWARD_BOTH}\n" in text
    assert conf.parse(text).interface["forward"] == "ipv4, ipv6" == hub.interface("k")["forward"]


def test_a_peering_that_wants_a_preshared_key_holds_the_same_one_at_both_ends(provider) -> None:
    world = hub_world(psk_links=("m-h-b",))
    secret = psk.generate()
    psks = {frozenset(("h", "b")): secret}
    hub = provider._cluster_conf(world["cluster.h"], world.views, world.peering(), psks=psks)
    b = provider._cluster_conf(world["cluster.b"], world.views, world.peering(), psks=psks)
    assert peer(hub, "b").preshared_key == secret == peer(b, "h").preshared_key
    assert peer(hub, "a").preshared_key is None
    assert f"PresharedKey = {secret}\n" in conf.render(hub, keys.generate())
    # Its value never shows where a peer is compared or printed.
    assert peer(hub, "b").comparable()["preshared_key"] == "present"
    assert secret not in repr(hub) and secret not in str(peer(hub, "b").comparable())
    assert "preshared_key" not in peer(hub, "a").comparable()


def test_a_preshared_key_not_at_hand_is_a_placeholder_that_never_reaches_a_file(provider) -> None:
    world = hub_world(psk_links=("m-h-b",))
    hub = provider._cluster_conf(world["cluster.h"], world.views, world.peering())
    assert peer(hub, "b").preshared_key == conf.PSK_PLACEHOLDER
    with pytest.raises(conf.UnsafeConfigError, match="stand-in for the preshared key with 'b'"):
        conf.render(hub, keys.generate())


def test_an_external_peer_is_known_by_its_key(provider) -> None:
    world = ResourceWorld()
    world.cluster("a", "100.96.0.1", [], endpoint="192.0.2.1:51820")
    world.cluster("partner", "100.96.0.2", ["10.9.0.0/16"], endpoint="198.51.100.7:51820", public_key=PARTNER_KEY, computed_key=False)
    world.link("a-partner", "a", "partner")
    a = provider._cluster_conf(world["cluster.a"], world.views, world.peering())
    assert peer(a, "partner").public_key == PARTNER_KEY


def test_parse_reads_preshared_keys_as_present_or_differs_never_their_value() -> None:
    secret, other = psk.generate(), psk.generate()
    text = f"[Interface]\nListenPort = 1\n[Peer]\nPublicKey = {PARTNER_KEY}\npresharedkey = {secret}\n"
    assert conf.parse(text).peers[PARTNER_KEY]["preshared_key"] == "present"
    assert conf.parse(text, {PARTNER_KEY: secret}).peers[PARTNER_KEY]["preshared_key"] == "present"
    parsed = conf.parse(text, {PARTNER_KEY: other})
    assert parsed.peers[PARTNER_KEY]["preshared_key"] == "differs"
    assert secret not in repr(parsed)


def test_parse_takes_only_skyplan_s_forwarding_line_as_a_post_up() -> None:
    hub = conf.parse(f"[Interface]\nPostUp = {conf.FORWARD_IPV4}\n")
    assert hub.interface["forward"] == "ipv4" and hub.extra == {}
    other = conf.parse(f"[Interface]\nPostUp = {conf.FORWARD_IPV4}; touch /tmp/x\nPostUp = {conf.FORWARD_IPV4}\nPostUp = {conf.FORWARD_IPV4}\n")
    assert other.interface["forward"] == "ipv4"
    assert other.extra == {"Interface": ["PostUp at line 2", "PostUp at line 4"]}
    # In a [Peer] section it is no forwarding line at all.
    assert conf.parse(f"[Peer]\nPostUp = {conf.FORWARD_IPV4}\n").extra == {"Peer 1": ["PostUp at line 2"]}


def test_render_refuses_a_post_up_other_than_the_forwarding_line() -> None:
    cluster = conf.ClusterConf("a", "100.96.0.1/32", 51820, None, ())
    text = conf.render(cluster, keys.generate())
    assert "PostUp" not in text
    from skyplan_wireguard.conf import _ALLOWED_LINE

    assert _ALLOWED_LINE.fullmatch(f"PostUp = {conf.FORWARD_IPV4}")
    assert not _ALLOWED_LINE.fullmatch(f"PostUp = {conf.FORWARD_IPV4}; id")
    assert not _ALLOWED_LINE.fullmatch("PostUp = sysctl -q -w net.ipv4.ip_forward=0")


def test_every_new_kind_of_config_passes_wg_quick_strip(provider, tmp_path) -> None:
    if shutil.which("wg-quick") is None:
        pytest.fail("wg-quick (wireguard-tools) is not installed; .ci/setup installs it")
    world = hub_world(psk_links=("m-h-a", "m-h-b"))
    psks = {frozenset(("h", "a")): psk.generate(), frozenset(("h", "b")): psk.generate()}
    for name in ("h", "a", "b"):
        path = tmp_path / f"{name}.conf"
        path.write_text(conf.render(provider._cluster_conf(world[f"cluster.{name}"], world.views, world.peering(), psks=psks), keys.generate()))
        done = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("PresharedKey = ") == (2 if name == "h" else 1)
        assert "PostUp" not in done.stdout  # wg-quick's own directive, stripped: wg never sees it


def test_pinned_addresses_come_first_and_previous_ones_stay_while_they_fit() -> None:
    pools = dict.fromkeys(("a", "b", "c", "d"), "100.96.0.0/29")
    previous = {"a": "100.96.0.1", "b": "100.96.0.2", "c": None, "d": "100.96.0.3"}
    # b pins a's old address: b takes it, d keeps its own, a and c get the lowest free (name order).
    assert addresses.allocate(pools, previous, {"b": "100.96.0.1"}) == {
        "a": "100.96.0.2",
        "b": "100.96.0.1",
        "c": "100.96.0.4",
        "d": "100.96.0.3",
    }
    # A pin is kept when the pool changes, as long as it still fits.
    moved = dict.fromkeys(("a", "b"), "100.96.0.0/24")
    assert addresses.allocate(moved, {"a": "100.96.0.9", "b": None}, {"a": "100.96.0.9"})["a"] == "100.96.0.9"
    with pytest.raises(ValueError, match="not a usable address of the pool"):
        addresses.allocate(pools, {}, {"a": "100.96.0.7"})  # the broadcast address
    with pytest.raises(ValueError, match="pinned by another cluster"):
        addresses.allocate(pools, {}, {"a": "100.96.0.5", "b": "100.96.0.5"})


def test_plan_knows_pinned_addresses_and_external_keys(provider) -> None:
    from skyplan.sdk import PlanRequest

    world = ResourceWorld()
    world.cluster("a", None, [], endpoint="192.0.2.1:51820", address_pin="100.96.0.7")
    world.cluster("b", "100.96.0.7", [], endpoint="192.0.2.2:51820")
    world.cluster("p", None, [], endpoint="192.0.2.3:51820", public_key=PARTNER_KEY, computed_key=False)
    planned = provider.plan(PlanRequest(list(world.views.values()))).planned
    assert planned["cluster.a"] == {"address": "100.96.0.7"}
    assert planned["cluster.b"] == {"address": "100.96.0.1"}  # the pin took its address
    assert planned["cluster.p"] == {"address": "100.96.0.2", "public_key": PARTNER_KEY}
