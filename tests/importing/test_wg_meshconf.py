"""`skyplan import` of a mesh that another tool wrote: wg-meshconf (PyPI), run here as users run it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .confs import semantic, stripped

PEERS = {
    # name: (address, endpoint, extra AllowedIPs)
    "alpha": ("10.0.0.1", "192.0.2.11", ""),
    "beta": ("10.0.0.2", "192.0.2.12", "10.2.0.0/16"),
    "gamma": ("10.0.0.3", "192.0.2.13", ""),
}


def wg_meshconf(folder: Path, *args: str) -> None:
    program = shutil.which("wg-meshconf", path=str(Path(sys.executable).parent)) or shutil.which("wg-meshconf")
    assert program, "wg-meshconf is in the test extra (pyproject.toml)"
    done = subprocess.run([program, *args], cwd=folder, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def generate_mesh(folder: Path, prefix: int, keepalive: str | None = None) -> list[Path]:
    """`wg-meshconf init`, `addpeer` for each peer, `genconfig`: its own files, in output/."""
    folder.mkdir(parents=True, exist_ok=True)
    wg_meshconf(folder, "init")
    for name, (address, endpoint, allowed) in PEERS.items():
        args = ["addpeer", name, "--address", f"{address}/{prefix}", "--endpoint", endpoint, "--listenport", "51820"]
        if allowed:
            args += ["--allowedips", allowed]
        if keepalive:
            args += ["--persistentkeepalive", keepalive]
        wg_meshconf(folder, *args)
    wg_meshconf(folder, "genconfig")
    files = sorted((folder / "output").glob("*.conf"))
    assert [f.stem for f in files] == sorted(PEERS)
    return files


@pytest.mark.parametrize("keepalive", [None, "15"])
def test_a_wg_meshconf_mesh_imports_plans_without_adding_and_applies_equivalent_configs(
    skyplan, workspace: Path, keepalive: str | None
) -> None:
    files = generate_mesh(workspace / "mesh", 32, keepalive)
    result = skyplan("import", *map(str, files), "--auto-approve")
    assert result.exit_code == 0, result.output
    text = (workspace / "links.yaml").read_text()
    for name in PEERS:
        assert f"- name: {name}\n" in text
    assert "- name: alpha.beta" in text and "- name: beta.gamma" in text
    assert "subnets: [10.2.0.0/16]" in text

    plan = json.loads(skyplan("plan", "--json").output)
    assert plan["summary"]["add"] == 0 and plan["summary"]["destroy"] == 0
    assert not any("delete" in c["change"]["actions"] for c in plan["resource_changes"])
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert "No changes." in skyplan("plan").output
    for original in files:
        written = workspace / "wireguard" / original.stem / "wgsky0.conf"
        assert semantic(stripped(written)) == semantic(stripped(original)), original.stem


def test_wg_meshconf_s_shared_prefix_is_named_and_each_peer_gets_its_own_address(skyplan, workspace: Path) -> None:
    # wg-meshconf's own example uses /24 addresses, which it copies into every peer's AllowedIPs:
    # WireGuard masks them to one 10.0.0.0/24 that each peer claims, so only the last peer of a
    # file gets that traffic. skyplan routes each peer's own address to it, and says so.
    files = generate_mesh(workspace / "mesh", 24)
    result = skyplan("import", *map(str, files))
    assert result.exit_code == 0, result.output
    alpha = files[0]
    assert (
        f"{alpha}:11: AllowedIPs 10.0.0.2/24 for 'beta' is carried as 10.0.0.2/32: skyplan routes only a cluster's "
        "own overlay address to it (10.0.0.0/24 holds others' too)"
    ) in result.output
    assert f"{alpha}:3: Address 10.0.0.1/24 is carried as 10.0.0.1/32" in result.output
    assert "address_pool: 10.0.0.0/24" in result.output
