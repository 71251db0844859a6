"""A hub and two spokes on real tunnels, one spoke behind a real NAT, preshared keys on, the
spokes reaching each other through the hub: the generated files brought up with `wg-quick up`
and nothing else configured by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from .netns import NAT_LAN, Lab, read_wg_quick

pytestmark = pytest.mark.e2e

INTERFACE = "wgsky0"


def links_yaml(lab: Lab) -> str:
    return (
        "version: 1\n"
        "provider:\n"
        "  name: wireguard\n"
        f"  interface: {INTERFACE}\n"
        "  address_pool: 100.96.0.0/24\n"
        "  preshared_keys: true\n"
        "clusters:\n"
        f"  - name: hub\n    endpoint: {lab.endpoint('hub')}\n    subnets: [10.0.0.0/16]\n"
        f"  - name: a\n    endpoint: {lab.endpoint('a')}\n    subnets: [10.1.0.0/16]\n"
        # b is behind NAT: no endpoint, it dials out and keeps its mapping alive.
        "  - name: b\n    subnets: [10.2.0.0/16]\n    persistent_keepalive: 5\n"
        "meshes:\n"
        "  - {name: stores, clusters: [hub, a, b], topology: hub, hub: hub, transit: true}\n"
    )


def skyplan(*args: str) -> str:
    from skyplan.cli.skyplan_cmd import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"skyplan {' '.join(args)} exited with {result.exit_code}:\n{result.output}"
    return result.output


def test_spokes_reach_each_other_through_a_hub_one_of_them_behind_nat(make_lab, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    lab = make_lab("hub", "a", "b", behind_nat=("b",))
    assert "masquerade" in lab.nat_table("b")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    links_file = workspace / "links.yaml"
    links_file.write_text(links_yaml(lab))
    skyplan("apply", str(links_file), "--auto-approve")

    shown = json.loads(skyplan("show", "--json", "--config", str(links_file)))
    values = {r["name"]: r["values"] for r in shown["values"]["root_module"]["resources"] if r["type"] == "cluster"}
    overlay = {name: v["address"] for name, v in values.items()}
    public = {name: v["public_key"] for name, v in values.items()}
    configs = {name: workspace / "wireguard" / name / f"{INTERFACE}.conf" for name in ("hub", "a", "b")}
    stored = {p.name: p.read_text().strip() for p in (workspace / ".skyplan/keys").glob("*.psk")}
    assert sorted(stored) == ["a+hub.psk", "b+hub.psk"]

    # Nobody can dial b: the hub's file has no Endpoint for it.
    hub_file = read_wg_quick(configs["hub"])
    by_key = {peer.public_key: peer for peer in hub_file.peers}
    assert by_key[public["b"]].endpoint is None and by_key[public["a"]].endpoint == lab.endpoint("a")

    for name in ("hub", "a", "b"):
        lab.wg_quick_up(name, configs[name])

    # The NAT'd spoke reaches the hub; only then does the hub learn where b is: at the router.
    assert lab.ping("b", overlay["hub"]), "b (behind NAT) cannot reach the hub"
    assert lab.ping("hub", overlay["b"]), "the hub cannot answer b through b's NAT mapping"
    hub_peers = lab.wg_dump("hub").peers
    assert hub_peers[public["b"]].endpoint.split(":")[0] == lab.underlay["b"], "b's packets did not come through its NAT router"
    assert not lab.ping("hub", NAT_LAN[1], attempts=1), "b's private address is reachable: b is not behind NAT"

    # The spokes reach each other, though neither has the other as a peer: through the hub.
    assert lab.ping("a", overlay["b"]), "a cannot reach b through the hub"
    assert lab.ping("b", overlay["a"]), "b cannot reach a through the hub"
    assert set(lab.wg_dump("a").peers) == {public["hub"]} and set(lab.wg_dump("b").peers) == {public["hub"]}
    # The hub forwards because its own file said so (PostUp), not because a spoke does.
    assert lab.run("hub", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    assert lab.run("a", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"

    # `wg show` on the hub: each spoke's peering has its own preshared key, the one in the store,
    # and each spoke runs with the same one.
    listed = dict(line.split("\t") for line in lab.run("hub", ["wg", "show", INTERFACE, "preshared-keys"]).stdout.splitlines())
    assert listed == {public["a"]: stored["a+hub.psk"], public["b"]: stored["b+hub.psk"]}
    for spoke in ("a", "b"):
        (line,) = lab.run(spoke, ["wg", "show", INTERFACE, "preshared-keys"]).stdout.splitlines()
        assert line == f"{public['hub']}\t{stored[f'{spoke}+hub.psk']}"
    assert "No changes." in skyplan("plan", str(links_file))
