"""Generated configs checked by WireGuard's own tools (`wg`, `wg-quick`), without any interface."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

LINKS = """\
version: 1
provider:
  name: wireguard
  address_pool: {pool}
  mtu: 1380
  persistent_keepalive: {keepalive}
clusters:
  - name: us-west
    endpoint: 203.0.113.10:51820
    subnets: [10.10.0.0/16]
  - name: eu-central
    endpoint: "[2001:db8::20]:51999"
    listen_port: 51999
    subnets: [10.20.0.0/16, fd10:20::/64]
  - name: ap-south
    endpoint: vpn.ap-south.example.net:51820
    subnets: [10.30.0.0/16, 10.31.0.0/16]
  - name: lonely
    endpoint: 198.51.100.40:51820
    subnets: []
links:
  - name: us-eu
    source: us-west
    target: eu-central
  - name: us-ap
    source: us-west
    target: ap-south
  - name: ap-us
    source: ap-south
    target: us-west
"""


@pytest.fixture(scope="module")
def wg_tools() -> None:
    missing = [tool for tool in ("wg", "wg-quick") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: install wireguard-tools (.ci/setup does)", pytrace=False)


@pytest.fixture(params=[("100.96.0.0/16", 25), ("fd00:5c::/120", 0)], ids=["ipv4-pool", "ipv6-pool"])
def applied(request, wg_tools, tmp_path: Path, monkeypatch) -> Path:
    from skyplan.cli.skyplan_cmd import main

    pool, keepalive = request.param
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "links.yaml").write_text(LINKS.format(pool=pool, keepalive=keepalive))
    result = CliRunner().invoke(main, ["apply", str(tmp_path / "links.yaml"), "--auto-approve"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return tmp_path


def configs(workspace: Path) -> dict[str, Path]:
    found = {path.parent.name: path for path in (workspace / "wireguard").glob("*/wgsky0.conf")}
    assert sorted(found) == ["ap-south", "eu-central", "lonely", "us-west"]
    return found


def test_every_generated_config_passes_wg_quick_strip(applied: Path) -> None:
    for cluster, path in configs(applied).items():
        done = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"wg-quick strip rejects {cluster}'s config: {done.stderr}"
        assert "[Interface]" in done.stdout and "PrivateKey" in done.stdout


def test_wg_pubkey_of_each_key_file_is_the_public_key_its_peers_hold(applied: Path) -> None:
    public = {}
    for cluster in configs(applied):
        key_file = applied / ".skyplan" / "keys" / f"{cluster}.key"
        done = subprocess.run(["wg", "pubkey"], input=key_file.read_bytes(), capture_output=True)
        assert done.returncode == 0, f"wg pubkey rejects {key_file}: {done.stderr.decode()}"
        public[cluster] = done.stdout.decode().strip()
    held: dict[str, set[str]] = {cluster: set() for cluster in public}
    for cluster, path in configs(applied).items():
        # Each [Peer] follows skyplan's "# Peer NAME, link…" comment; it names whose key it holds.
        for name, key in re.findall(r"^# Peer (\S+), links?: .*\n\[Peer\]\nPublicKey = (\S+)$", path.read_text(), re.M):
            assert key == public[name], f"{cluster} holds a PublicKey for {name} other than wg pubkey of {name}.key"
            held[name].add(cluster)
    assert held == {"us-west": {"eu-central", "ap-south"}, "eu-central": {"us-west"}, "ap-south": {"us-west"}, "lonely": set()}
