"""Topologies on gateways over SSH: a transit hub, a spoke behind NAT, preshared keys, an external peer.

One lab for the module: gateways `hub`, `s1` and `s2`, each a network and mount namespace with its
own sshd, /etc/wireguard and wireguard-go; skyplan's `ssh` runs in the controller namespace. `s2`
has no endpoint and sits behind a stateful firewall that nobody can dial through, as behind a NAT:
it only dials out. Nothing is configured by hand on any host: skyplan's apply is all there is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyplan_wireguard import keys

from .gateways import NFT, GatewayLab, Secret, running_lab

pytestmark = pytest.mark.e2e

INTERFACE = "wgsky0"
CONF_FILE = f"/etc/wireguard/{INTERFACE}.conf"
SUBNETS = {"hub": "10.10.0.0/16", "s1": "10.11.0.0/16", "s2": "10.12.0.0/16"}
HOSTS = {"hub": "10.10.0.1", "s1": "10.11.0.1", "s2": "10.12.0.1"}  # one answering address in each subnet
SPOKES = ("s1", "s2")
# Known only by its public key: a partner's host, whose config is written elsewhere.
PARTNER_KEY = keys.public_key(keys.generate())


@pytest.fixture(scope="module")
def lab(gateway_prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayLab]:
    if not os.access(NFT, os.X_OK):
        pytest.fail(f"the topology tests need {NFT} (Debian package nftables; .ci/setup installs it)", pytrace=False)
    with pytest.MonkeyPatch.context() as patch, running_lab(["hub", "s1", "s2"], tmp_path_factory.mktemp("topologies"), patch) as lab:
        lab.dial_out_only("s2")
        for gateway, address in HOSTS.items():
            lab.add_host(gateway, f"{address}/32")
        yield lab


@pytest.fixture
def world(lab: GatewayLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh gateways and an empty workspace (the current folder) holding the lab's ssh config."""
    lab.reset()
    for gateway in lab.gateways:  # forwarding is the hub's to turn on: off before each test
        lab.run(gateway, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0"])
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    monkeypatch.delenv("SKYPLAN_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    shutil.copy(lab.ssh_config, workspace / "ssh_config")
    return workspace


def links_yaml(lab: GatewayLab, *, partner: bool = False) -> str:
    """hub and its spokes s1, s2 as one transit mesh, preshared keys on; s2 has no endpoint.
    With `partner`, an external peer linked to the hub."""
    clusters = ""
    for name in ("hub", "s1", "s2"):
        clusters += f"  - name: {name}\n"
        if name != "s2":
            clusters += f"    endpoint: {lab.endpoint(name)}\n"
        clusters += f"    subnets: [{SUBNETS[name]}]\n    gateway: {name}\n"
    links = ""
    if partner:
        clusters += f"  - name: partner\n    endpoint: 192.0.2.99:51820\n    subnets: [10.99.0.0/16]\n    public_key: \"{PARTNER_KEY}\"\n"
        links = "links:\n  - name: hub-partner\n    source: hub\n    target: partner\n"
    return (
        "version: 1\n"
        "provider:\n"
        "  name: wireguard\n"
        f"  interface: {INTERFACE}\n"
        "  address_pool: 100.96.0.0/24\n"
        "  persistent_keepalive: 5\n"
        "  preshared_keys: true\n"
        "  ssh:\n"
        "    config: ssh_config\n"
        "    timeout: 20s\n"
        f"clusters:\n{clusters}"
        f"{links}"
        "meshes:\n"
        "  - {name: stores, clusters: [hub, s1, s2], topology: hub, hub: hub, transit: true}\n"
    )


def run_ok(cli, *args: str, code: int = 0) -> str:
    result = cli(*args)
    assert result.exit_code == code, f"{' '.join(args)} exited with {result.exit_code}, not {code}:\n{result.output}"
    return result.output


def state_resources(skyplan) -> dict[str, dict]:
    shown = json.loads(run_ok(skyplan, "show", "--json"))
    return {r["address"]: r["values"] for r in shown["values"]["root_module"]["resources"]}


def wait_for(condition, seconds: float = 15.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def reaches(lab: GatewayLab, source: str, address: str) -> bool:
    """Whether `source` gets an answer from `address` within a few seconds (a first handshake
    sent while its peer was still being changed is retried by WireGuard after 5 s)."""
    return wait_for(lambda: lab.ping(source, address, attempts=1), seconds=12, step=0.1)


def digest(value: Secret | None) -> str | None:
    """What a test compares of a preshared key: a hash, so that a failed assert shows no key."""
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()[:16]


def peering_keys(lab: GatewayLab, skyplan) -> dict[str, tuple[str | None, str | None]]:
    """Each spoke's peering with the hub: (digest of the hub's key for it, of its key for the hub)."""
    public = {a.split(".", 1)[1]: v["public_key"] for a, v in state_resources(skyplan).items() if a.startswith("cluster.")}
    on_hub = lab.preshared_keys("hub")
    return {spoke: (digest(on_hub.get(public[spoke])), digest(lab.preshared_keys(spoke).get(public["hub"]))) for spoke in SPOKES}


def every_file_under(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def test_spokes_reach_each_other_through_a_transit_hub_with_preshared_keys_that_stay_on_the_gateways(lab: GatewayLab, world: Path, skyplan) -> None:
    (world / "links.yaml").write_text(links_yaml(lab))
    applied = run_ok(skyplan, "apply", "--auto-approve")
    assert "Apply complete!" in applied, applied
    overlay = {a.split(".", 1)[1]: v["address"] for a, v in state_resources(skyplan).items() if a.startswith("cluster.")}

    # The NAT'd spoke dials the hub; then everything reaches everything, the spokes through the hub.
    assert reaches(lab, "s2", overlay["hub"])
    assert reaches(lab, "s1", overlay["hub"])
    assert reaches(lab, "s1", overlay["s2"]) and reaches(lab, "s2", overlay["s1"])
    assert reaches(lab, "s1", HOSTS["s2"]) and reaches(lab, "s2", HOSTS["s1"])  # their subnets too
    assert reaches(lab, "hub", HOSTS["s2"])
    # The hub forwards because skyplan said so (each test starts with forwarding off); spokes do not.
    assert lab.forwarding("hub")[0] == "1" and lab.forwarding("s1")[0] == lab.forwarding("s2")[0] == "0"

    # Preshared keys: on the hub for every peer, one per peering, the same at both of its ends.
    shown = lab.run("hub", ["wg", "show", INTERFACE]).stdout
    assert shown.count("preshared key: (hidden)") == 2, shown.count("preshared key: (hidden)")
    on_hub = lab.preshared_keys("hub")
    assert len(on_hub) == 2 and None not in on_hub.values()
    both = peering_keys(lab, skyplan)
    for spoke, (hub_side, spoke_side) in both.items():
        assert hub_side is not None and hub_side == spoke_side, f"the two ends of hub-{spoke} hold different keys"
    assert both["s1"][0] != both["s2"][0], "two peerings share one key"

    # The NAT'd spoke is never dialled: the hub's file has no Endpoint for it.
    hub_file = lab.path_on("hub", CONF_FILE).read_text()
    s2_section = hub_file.split("# Peer s2,", 1)[1].split("# Peer", 1)[0]
    assert "PresharedKey = " in s2_section and "Endpoint" not in s2_section
    assert "PostUp = sysctl -q -w net.ipv4.ip_forward=1" in hub_file

    # Nothing of any preshared key was written on the controller, nor shown.
    secrets = [v for v in on_hub.values() if v is not None]
    assert not list(world.rglob("*.psk"))
    for path in every_file_under(world):
        data = path.read_bytes()
        assert not any(s.encode() in data for s in secrets), f"{path.relative_to(world)} holds a preshared key"
    plan = run_ok(skyplan, "plan", "--detailed-exitcode")
    assert "No changes." in plan
    shown_state = run_ok(skyplan, "show", "--json")
    assert not any(s in applied + plan + shown_state for s in secrets)

    # A second apply changes nothing, and the keys stay as they are.
    again = run_ok(skyplan, "apply", "--auto-approve")
    assert "No changes." in again, again
    assert peering_keys(lab, skyplan) == both


def test_replacing_a_link_rotates_its_peerings_preshared_key_on_both_gateways_and_no_other(lab: GatewayLab, world: Path, skyplan) -> None:
    (world / "links.yaml").write_text(links_yaml(lab, partner=False))
    run_ok(skyplan, "apply", "--auto-approve")
    overlay = {a.split(".", 1)[1]: v["address"] for a, v in state_resources(skyplan).items() if a.startswith("cluster.")}
    assert reaches(lab, "s2", overlay["hub"]) and reaches(lab, "s1", overlay["s2"])
    before = peering_keys(lab, skyplan)

    output = run_ok(skyplan, "apply", "--auto-approve", "--replace", "link.stores.hub.s1")
    assert "Apply complete!" in output, output
    after = peering_keys(lab, skyplan)
    assert after["s1"][0] is not None and after["s1"][0] == after["s1"][1], "the two ends of hub-s1 disagree"
    assert after["s1"] != before["s1"], "the key of hub-s1 was not rotated"
    assert after["s2"] == before["s2"], "the key of hub-s2 changed too"
    assert reaches(lab, "s1", overlay["hub"]) and reaches(lab, "s1", overlay["s2"])
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")


def test_a_preshared_key_removed_on_a_gateway_by_hand_is_drift_and_apply_puts_both_ends_right(lab: GatewayLab, world: Path, skyplan) -> None:
    (world / "links.yaml").write_text(links_yaml(lab, partner=False))
    run_ok(skyplan, "apply", "--auto-approve")
    public = {a.split(".", 1)[1]: v["public_key"] for a, v in state_resources(skyplan).items() if a.startswith("cluster.")}
    before = peering_keys(lab, skyplan)
    lab.run("hub", ["wg", "set", INTERFACE, "peer", public["s1"], "preshared-key", "/dev/null"])
    assert lab.preshared_keys("hub")[public["s1"]] is None

    plan = run_ok(skyplan, "plan", "--detailed-exitcode", code=2)
    assert "Changed outside skyplan:" in plan and "link.stores.hub.s1" in plan, plan
    run_ok(skyplan, "apply", "--auto-approve")
    after = peering_keys(lab, skyplan)
    assert after["s1"][0] is not None and after["s1"][0] == after["s1"][1]
    assert after["s2"] == before["s2"]
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")


def test_a_gateway_peered_with_an_external_peer_holds_its_key_and_a_preshared_key_that_stays(lab: GatewayLab, world: Path, skyplan) -> None:
    (world / "links.yaml").write_text(links_yaml(lab, partner=True))
    applied = run_ok(skyplan, "apply", "--auto-approve")
    assert "Apply complete!" in applied, applied
    hub_file = lab.path_on("hub", CONF_FILE).read_text()
    partner = hub_file.split("# Peer partner,", 1)[1].split("# Peer", 1)[0]
    assert f"PublicKey = {PARTNER_KEY}" in partner and "Endpoint = 192.0.2.99:51820" in partner and "PresharedKey = " in partner
    on_hub = lab.preshared_keys("hub")
    assert on_hub.get(PARTNER_KEY) is not None and len(set(on_hub.values())) == 3
    # Nothing is generated or written for the partner here, and its key stays on the hub alone.
    assert not (world / "wireguard" / "partner").exists() and not list(world.rglob("*.psk"))
    assert not any(path.name.startswith("partner") for path in (world / ".skyplan").rglob("*"))
    for path in every_file_under(world):
        assert on_hub[PARTNER_KEY].encode() not in path.read_bytes(), f"{path.relative_to(world)} holds the partner's preshared key"
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    run_ok(skyplan, "apply", "--auto-approve", "--replace", "link.stores.hub.s1")
    assert lab.preshared_keys("hub")[PARTNER_KEY] == on_hub[PARTNER_KEY]


def test_a_preshared_key_changed_on_one_gateway_by_hand_is_drift_though_no_host_shows_it(lab: GatewayLab, world: Path, skyplan) -> None:
    (world / "links.yaml").write_text(links_yaml(lab, partner=False))
    run_ok(skyplan, "apply", "--auto-approve")
    public = {a.split(".", 1)[1]: v["public_key"] for a, v in state_resources(skyplan).items() if a.startswith("cluster.")}
    before = peering_keys(lab, skyplan)
    # Another key of the same shape on s2's side only: the tunnel breaks, both still say "(hidden)".
    lab.run("s2", ["sh", "-c", f"wg genpsk > /run/wireguard/other.psk && wg set {INTERFACE} peer {public['hub']} preshared-key /run/wireguard/other.psk && rm /run/wireguard/other.psk"])
    assert peering_keys(lab, skyplan)["s2"][0] != peering_keys(lab, skyplan)["s2"][1]

    plan = run_ok(skyplan, "plan", "--detailed-exitcode", code=2)
    drift = plan.split("Changed outside skyplan:", 1)[1].split("skyplan will perform", 1)[0]
    assert "link.stores.hub.s2" in drift and '"differs"' in drift and "link.stores.hub.s1" not in drift, drift
    run_ok(skyplan, "apply", "--auto-approve")
    after = peering_keys(lab, skyplan)
    assert after["s2"][0] is not None and after["s2"][0] == after["s2"][1] and after["s1"] == before["s1"]
    overlay = {a.split(".", 1)[1]: v["address"] for a, v in state_resources(skyplan).items() if a.startswith("cluster.")}
    assert reaches(lab, "s2", overlay["hub"]) and reaches(lab, "s1", overlay["s2"])
