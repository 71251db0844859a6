"""Imported configs on real tunnels: running interfaces take skyplan's files without a change, and
a mesh that wg-meshconf wrote still connects once skyplan writes it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.importing.confs import write_hub_and_spoke
from tests.importing.test_wg_meshconf import PEERS, generate_mesh

from .netns import Lab

pytestmark = pytest.mark.e2e


def skyplan(*args: str) -> str:
    from skyplan.cli.skyplan_cmd import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, f"skyplan {' '.join(args)} exited with {result.exit_code}:\n{result.output}"
    return result.output


def _static(lab: Lab, cluster: str, interface: str) -> dict:
    """What the interface runs with, without what traffic changes (handshakes, counters)."""
    dump = lab.wg_dump(cluster, interface)
    return {
        "public_key": dump.public_key,
        "listen_port": dump.listen_port,
        "peers": {k: (sorted(p.allowed_ips), p.persistent_keepalive) for k, p in dump.peers.items()},
        "endpoints": {k: p.endpoint for k, p in dump.peers.items()},
    }


def test_running_hub_and_spoke_interfaces_take_the_imported_configs_without_a_change(make_lab, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    lab = make_lab("hub", "spoke1", "spoke2")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    files = write_hub_and_spoke(workspace / "etc", hub_endpoint=lab.endpoint("hub"))
    originals = dict(zip(("hub", "spoke1", "spoke2"), files.files))

    # The network as it ran before skyplan: the hand-written files, up.
    for cluster, path in originals.items():
        lab.up(cluster, path)
    for spoke in ("spoke1", "spoke2"):
        assert lab.ping(spoke, "10.50.0.1"), f"{spoke} cannot reach the hub over the original configs"
        assert lab.ping("hub", f"10.50.0.{2 if spoke == 'spoke1' else 3}"), f"the hub cannot reach {spoke}"
    before = {c: _static(lab, c, "wg0") for c in originals}
    handshakes = {c: {k: p.latest_handshake for k, p in lab.wg_dump(c, "wg0").peers.items()} for c in originals}

    assert "Import complete!" in skyplan("import", *map(str, files.files), "--auto-approve")
    assert "Apply complete! Resources: 0 added, 3 changed, 0 destroyed." in skyplan("apply", "--auto-approve")
    generated = {c: workspace / "wireguard" / c / "wg0.conf" for c in originals}

    # `wg syncconf` of skyplan's files, as the README's on_change hook runs it: nothing changes.
    for cluster, path in generated.items():
        lab.reload(cluster, path)
    assert {c: _static(lab, c, "wg0") for c in originals} == before
    for cluster in originals:
        peers = lab.wg_dump(cluster, "wg0").peers
        for key, handshake in handshakes[cluster].items():
            if handshake:
                assert peers[key].latest_handshake >= handshake  # the session was not dropped
    for spoke in ("spoke1", "spoke2"):
        assert lab.ping(spoke, "10.50.0.1"), f"{spoke} cannot reach the hub over skyplan's configs"
    assert lab.ping("hub", "10.50.0.2") and lab.ping("hub", "10.50.0.3")
    # The preshared key kept: the hub runs one with spoke1, and none with spoke2.
    psk_dump = lab.run("hub", ["wg", "show", "wg0", "preshared-keys"]).stdout
    by_peer = dict(line.split("\t") for line in psk_dump.splitlines())
    assert by_peer[files.public("spoke1")] == files.preshared
    assert by_peer[files.public("spoke2")] == "(none)"


def test_a_wg_meshconf_mesh_connects_on_skyplan_s_configs(make_lab, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    lab = make_lab(*PEERS)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    for name in PEERS:
        assert lab.underlay[name] == PEERS[name][1]  # the mesh's endpoints are the lab's hosts
    files = generate_mesh(workspace / "mesh", 32, keepalive="10")
    skyplan("import", *map(str, files), "--auto-approve")
    skyplan("apply", "--auto-approve")
    for name in PEERS:
        lab.up(name, workspace / "wireguard" / name / "wgsky0.conf")
    for a, b in itertools.permutations(PEERS, 2):
        assert lab.ping(a, PEERS[b][0]), f"{a} cannot reach {b} over the imported mesh"
