"""skyplan's generated configs on real WireGuard tunnels: who reaches whom, before and after a change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from .netns import Lab, public_key_of, read_wg_quick, strip_config

pytestmark = pytest.mark.e2e

INTERFACE = "wgsky0"
SUBNETS = {"a": "10.1.0.0/16", "b": "10.2.0.0/16", "c": "10.3.0.0/16"}


def links_yaml(lab: Lab, links: list[tuple[str, str]]) -> str:
    clusters = "".join(
        f"  - name: {name}\n    endpoint: {lab.endpoint(name)}\n    subnets: [{SUBNETS[name]}]\n" for name in lab.clusters
    )
    declared = "".join(f"  - name: {s}-{t}\n    source: {s}\n    target: {t}\n" for s, t in links)
    return (
        "version: 1\n"
        "provider:\n"
        "  name: wireguard\n"
        "  output_dir: wireguard\n"
        f"  interface: {INTERFACE}\n"
        "  address_pool: 100.96.0.0/24\n"
        "  listen_port: 51820\n"
        "  persistent_keepalive: 25\n"
        f"clusters:\n{clusters}"
        f"links:\n{declared}"
    )


def skyplan(*args: str) -> str:
    from skyplan.cli.skyplan_cmd import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"skyplan {' '.join(args)} exited with {result.exit_code}:\n{result.output}"
    return result.output


def config_of(workspace: Path, cluster: str) -> Path:
    return workspace / "wireguard" / cluster / f"{INTERFACE}.conf"


def overlay_addresses(links_file: Path) -> dict[str, str]:
    shown = json.loads(skyplan("show", "--json", "--config", str(links_file)))
    return {
        r["name"]: r["values"]["address"] for r in shown["values"]["root_module"]["resources"] if r["type"] == "cluster"
    }


def conf_host(address: str) -> str:
    return f"{address}/128" if ":" in address else f"{address}/32"


def assert_keys_agree(lab: Lab, workspace: Path, overlay: dict[str, str]) -> None:
    """`wg pubkey` of each key file is the key its interface runs with and the one its peers hold."""
    public = {c: public_key_of(workspace / ".skyplan" / "keys" / f"{c}.key") for c in lab.clusters}
    for cluster in lab.clusters:
        dump = lab.wg_dump(cluster)
        assert dump.public_key == public[cluster], f"{cluster} runs with a key other than its key file's"
        for peer in read_wg_quick(config_of(workspace, cluster)).peers:
            # The peer is known by its overlay address, independently of the key under test.
            (other,) = [c for c in lab.clusters if conf_host(overlay[c]) in peer.allowed_ips]
            assert other != cluster, f"{cluster}'s config lists itself as a peer"
            assert peer.public_key == public[other], f"{cluster} holds a PublicKey for {other} that is not wg pubkey of {other}.key"
            assert peer.public_key in dump.peers, f"{cluster}'s interface lacks its config's peer {other}"


def test_links_carry_traffic_only_between_linked_clusters(make_lab, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    lab = make_lab("a", "b", "c")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    links_file = workspace / "links.yaml"
    links_file.write_text(links_yaml(lab, [("a", "b"), ("a", "c")]))

    output = skyplan("apply", str(links_file), "--auto-approve")
    assert "Apply complete! Resources: 5 added, 0 changed, 0 destroyed." in output

    configs = {c: config_of(workspace, c) for c in lab.clusters}
    for cluster, path in configs.items():
        assert strip_config(path).strip(), f"wg-quick strip of {cluster}'s config is empty"
    overlay = overlay_addresses(links_file)
    assert sorted(overlay) == ["a", "b", "c"]
    for cluster, path in configs.items():
        assert read_wg_quick(path).addresses == (conf_host(overlay[cluster]),)

    for cluster, path in configs.items():
        lab.up(cluster, path)
    assert_keys_agree(lab, workspace, overlay)

    assert lab.ping("a", overlay["b"]), "a cannot reach b over link a-b"
    assert lab.ping("a", overlay["c"]), "a cannot reach c over link a-c"
    assert lab.ping("b", overlay["a"]) and lab.ping("c", overlay["a"]), "links do not carry traffic both ways"
    assert not lab.ping("b", overlay["c"], attempts=1), "b reaches c, but no link joins them"
    assert not lab.ping("c", overlay["b"], attempts=1), "c reaches b, but no link joins them"
    public = {c: lab.wg_dump(c).public_key for c in lab.clusters}
    assert set(lab.wg_dump("b").peers) == {public["a"]}
    assert set(lab.wg_dump("c").peers) == {public["a"]}
    a_before = lab.wg_dump("a").peers
    assert a_before[public["b"]].latest_handshake > 0 and a_before[public["c"]].latest_handshake > 0

    # Remove link a-c; only the two files it touched change, and reloading them cuts a off from c.
    before = {c: p.read_bytes() for c, p in configs.items()}
    links_file.write_text(links_yaml(lab, [("a", "b")]))
    output = skyplan("apply", str(links_file), "--auto-approve")
    assert "Apply complete! Resources: 0 added, 0 changed, 1 destroyed." in output
    changed = sorted(c for c, p in configs.items() if p.read_bytes() != before[c])
    assert changed == ["a", "c"]
    for cluster in lab.clusters:
        assert strip_config(configs[cluster]).strip()
    for cluster in changed:
        lab.reload(cluster, configs[cluster])

    assert not lab.ping("a", overlay["c"], attempts=1), "a still reaches c after link a-c was removed"
    assert not lab.ping("c", overlay["a"], attempts=1), "c still reaches a after link a-c was removed"
    assert lab.ping("a", overlay["b"]) and lab.ping("b", overlay["a"]), "link a-b broke when a-c was removed"
    a_after = lab.wg_dump("a").peers
    assert set(a_after) == {public["b"]}
    assert lab.wg_dump("c").peers == {}
    # The a-b session survived the reload: same handshake, counters kept counting.
    assert a_after[public["b"]].latest_handshake == a_before[public["b"]].latest_handshake
    assert a_after[public["b"]].rx_bytes > a_before[public["b"]].rx_bytes
    assert_keys_agree(lab, workspace, overlay)


def test_ipv6_overlay_mtu_and_listen_port_settings_run(make_lab, tmp_path: Path, monkeypatch) -> None:
    """Settings the first test leaves at their defaults: an IPv6 pool, MTU, a per-cluster port, no keepalive."""
    monkeypatch.setenv("NO_COLOR", "1")
    lab = make_lab("x", "y")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    links_file = workspace / "links.yaml"
    links_file.write_text(
        "version: 1\n"
        "provider:\n"
        "  name: wireguard\n"
        "  address_pool: fd00:5c::/120\n"
        "  mtu: 1380\n"
        "  persistent_keepalive: 0\n"
        "clusters:\n"
        f"  - name: x\n    endpoint: {lab.endpoint('x')}\n    subnets: [10.8.0.0/16, fd10:8::/64]\n"
        f"  - name: y\n    endpoint: {lab.endpoint('y', 51999)}\n    listen_port: 51999\n    subnets: [fd10:9::/64]\n"
        "links:\n"
        "  - name: x-y\n    source: x\n    target: y\n"
    )
    skyplan("apply", str(links_file), "--auto-approve")
    overlay = overlay_addresses(links_file)
    configs = {c: config_of(workspace, c) for c in lab.clusters}
    for cluster, path in configs.items():
        lab.up(cluster, path)

    assert lab.ping("x", overlay["y"]) and lab.ping("y", overlay["x"]), "no IPv6 traffic over link x-y"
    assert lab.wg_dump("y").listen_port == 51999
    for cluster in lab.clusters:
        (peer,) = lab.wg_dump(cluster).peers.values()
        assert peer.persistent_keepalive == 0
        assert peer.latest_handshake > 0
        link = lab.run(cluster, ["ip", "-j", "link", "show", "dev", INTERFACE]).stdout
        assert json.loads(link)[0]["mtu"] == 1380
    routes = lab.run("x", ["ip", "-6", "route", "show", "dev", INTERFACE]).stdout
    assert "fd10:9::/64" in routes
    assert_keys_agree(lab, workspace, overlay)
