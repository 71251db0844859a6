"""Generated wg-quick configs: accepted by wg-quick, one write per cluster, nothing unintended."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from skyplan_wireguard import conf, keys
from tests.workspaces import links_yaml


def strip(path) -> str:
    if shutil.which("wg-quick") is None:
        pytest.fail("wg-quick (wireguard-tools) is not installed; .ci/setup installs it")
    done = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


VARIANTS = {
    "defaults": "",
    "mtu-and-no-keepalive": "mtu: 1380\npersistent_keepalive: 0",
    "ipv6-pool": "address_pool: fd00:5ca1::/64",
}


@pytest.mark.parametrize("provider", list(VARIANTS.values()), ids=list(VARIANTS))
def test_every_generated_config_passes_wg_quick_strip(workspace, skyplan, provider):
    text = links_yaml(
        [
            ("v4", "192.0.2.1:51820", ["10.1.0.0/16", "10.2.0.0/16"]),
            ("v6", "[2001:db8::2]:4500", ["fd10::/48"]),
            ("dns", "vpn.example.net:51820", []),
        ],
        [("v4-v6", "v4", "v6"), ("v4-dns", "v4", "dns"), ("v6-dns", "v6", "dns"), ("v4-v6-again", "v6", "v4")],
        provider=provider,
    )
    (workspace / "links.yaml").write_text(text)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    configs = sorted((workspace / "wireguard").rglob("wgsky0.conf"))
    assert len(configs) == 3
    for config in configs:
        stripped = strip(config)
        assert "PrivateKey = " in stripped
        assert stripped.count("[Peer]") == 2  # two links between v4 and v6 share one peer
    v4 = (workspace / "wireguard/v4/wgsky0.conf").read_text()
    assert "# Peer v6, links: v4-v6, v4-v6-again" in v4
    if "mtu" in provider:
        assert "MTU = 1380" in v4 and "PersistentKeepalive" not in v4
    if "fd00" in provider:
        assert "Address = fd00:5ca1::2/128" in v4  # ::1 went to "dns", first by name; :: is never used


def test_each_cluster_file_is_written_once_per_apply(workspace, skyplan, monkeypatch):
    from skyplan import atomic

    clusters = [(f"c{i}", f"192.0.2.{i + 1}:51820", [f"10.{i}.0.0/16"]) for i in range(6)]
    links = [(f"l{i}-{j}", f"c{i}", f"c{j}") for i in range(6) for j in range(i + 1, 6)]
    (workspace / "links.yaml").write_text(links_yaml(clusters, links))
    written = []
    original = atomic.Batch.add

    def add(batch, path, *args, **kw):
        if path.suffix == ".conf":
            written.append(path.parent.name)
        return original(batch, path, *args, **kw)

    monkeypatch.setattr(atomic.Batch, "add", add)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert sorted(written) == [f"c{i}" for i in range(6)], "15 links, but one write per cluster"
    written.clear()
    # One link removed and one re-pointed: only their ends are rewritten, once each.
    text = links_yaml(clusters, [link for link in links if link[0] not in ("l0-1", "l0-2")] + [("l0-2", "c1", "c2")])
    (workspace / "links.yaml").write_text(text)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert sorted(written) == ["c0", "c1", "c2"]
    written.clear()
    assert skyplan("apply", "--auto-approve").output == "No changes. Links match the configuration.\n"
    assert written == []


def test_render_refuses_a_line_it_does_not_mean_to_write():
    peer = conf.PeerConf("b", ("l",), "A" * 43 + "=", "192.0.2.2:51820\nPostUp = touch /tmp/pwned", ("100.96.0.2/32",), 25)
    cluster = conf.ClusterConf("a", "100.96.0.1/32", 51820, None, (peer,))
    with pytest.raises(conf.UnsafeConfigError):
        conf.render(cluster, "A" * 43 + "=")


PEER_KEY = "zB5JQz6sh4drgW28eA6b17tyU7Fue9sXv+57ZcBWgAU="


def test_parse_reads_what_wg_quick_reads():
    parsed = conf.parse(
        "[Interface]\nprivatekey = uBUMPXoOM7aziks+Vh2gX37m349A228D7ZEc49DkGUU= # comment\nListenPort=51820\n"
        f"PostUp = echo hi\n[Peer]\nPublicKey = {PEER_KEY}\nAllowedIPs = 10.0.0.0/8, 10.1.0.0/16\nAllowedIPs = 10.2.0.0/16\n"
    )
    assert parsed.interface["listen_port"] == 51820
    assert parsed.interface["public_key"] == keys.public_key("uBUMPXoOM7aziks+Vh2gX37m349A228D7ZEc49DkGUU=")
    assert parsed.peers[PEER_KEY]["allowed_ips"] == ["10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16"]
    # Named by directive and line, never with its value.
    assert parsed.extra == {"Interface": ["PostUp at line 4"]}


def test_parse_reads_only_ascii_digits_as_numbers():
    # '²' made plan fail with an internal error; '١٤٢٠' read as 1420 hid a file wg refuses.
    parsed = conf.parse(f"[Interface]\nListenPort = ²\nMTU = ١٤٢٠\n[Peer]\nPublicKey = {PEER_KEY}\nPersistentKeepalive = ²\n")
    assert parsed.interface["listen_port"] == "(not a number, line 2)"
    assert parsed.interface["mtu"] == "(not a number, line 3)"
    assert parsed.peers[PEER_KEY]["persistent_keepalive"] == "(not a number, line 6)"


def test_a_folder_in_place_of_a_config_is_a_clear_error(workspace, skyplan):
    (workspace / "links.yaml").write_text(links_yaml([("a", "192.0.2.1:51820", []), ("b", "192.0.2.2:51820", [])], [("ab", "a", "b")]))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    config = workspace / "wireguard/a/wgsky0.conf"
    config.unlink()
    config.mkdir()
    result = skyplan("plan")
    assert result.exit_code == 1
    assert result.output == (
        "Error: config wireguard/a/wgsky0.conf of cluster 'a' cannot be read: Is a directory. "
        "Move it away to have skyplan write it again\n"
    )
    assert config.is_dir()

