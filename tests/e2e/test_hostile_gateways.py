"""Attacks through the gateways, on real sshd gateways: a host that lies, a state that names hosts.

A hostile gateway is made as its attacker would: its `ip` replaced (a bind mount inside that
gateway's own mount namespace, so its sshd sessions run it and no other host sees it). A
hostile state is state.json edited by hand, as anyone who can write the state could.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .gateways import GatewayLab

pytestmark = pytest.mark.e2e

ESC = "\x1b"


@pytest.fixture
def lab(gateway_lab: GatewayLab) -> Iterator[GatewayLab]:
    yield gateway_lab
    for gateway in gateway_lab.gateways:
        gateway_lab.run(gateway, ["umount", "/usr/bin/ip"], check=False)


@pytest.fixture
def workspace(lab: GatewayLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Clusters a and b on gateways a and b, linked; applied."""
    folder = tmp_path / "ws"
    folder.mkdir()
    shutil.copy(lab.ssh_config, folder / "ssh_config")
    (folder / "links.yaml").write_text(links_yaml(lab, ["a", "b"]))
    monkeypatch.chdir(folder)
    monkeypatch.setenv("NO_COLOR", "1")
    return folder


def links_yaml(lab: GatewayLab, clusters: list[str]) -> str:
    lines = ["version: 1", "provider:", "  name: wireguard", "  ssh:", "    config: ssh_config", "    timeout: 20s", "clusters:"]
    for i, name in enumerate(clusters):
        lines += [f"  - name: {name}", f"    endpoint: {lab.underlay[name]}:51820", f"    subnets: [10.{i + 1}.0.0/16]", f"    gateway: {name}"]
    lines += ["links:", "  - name: a-b", "    source: a", "    target: b"]
    return "\n".join(lines) + "\n"


def hostile_ip(lab: GatewayLab, gateway: str, script: str) -> None:
    """Replace `ip` on `gateway` only: `script` runs first, the real ip is $REAL."""
    folder = lab.workdir / gateway
    real = folder / "real-ip"
    shutil.copy("/usr/bin/ip", real)
    fake = folder / "hostile-ip"
    fake.write_text(f"#!/bin/sh\nREAL={real}\n{script}\nexec \"$REAL\" \"$@\"\n")
    fake.chmod(0o755)
    lab.run(gateway, ["mount", "--bind", str(fake), "/usr/bin/ip"])


def private_keys(lab: GatewayLab) -> dict[str, str]:
    found = {}
    for gateway in lab.gateways:
        done = lab.run(gateway, ["cat", "/etc/wireguard/wgsky0.key"], check=False)
        if done.returncode == 0 and done.stdout.strip():
            found[gateway] = done.stdout.strip()
    return found


def test_private_keys_appear_in_no_output_file_or_state(lab, workspace, skyplan, skyctl) -> None:
    outputs = {"apply": skyplan("apply", "--auto-approve")}
    assert outputs["apply"].exit_code == 0, outputs["apply"].output
    outputs["plan"] = skyplan("plan", "--detailed-exitcode")
    assert outputs["plan"].exit_code == 0, outputs["plan"].output
    outputs["plan --json"] = skyplan("plan", "--json")
    outputs["plan --out"] = skyplan("plan", "--replace", "cluster.a", "--out", "replace.plan")
    outputs["show --json PLAN"] = skyplan("show", "--json", "replace.plan")
    outputs["show --json"] = skyplan("show", "--json")
    outputs["state"] = skyplan("state", "list")
    outputs["skyctl get link -o json"] = skyctl("get", "link", "-o", "json")
    outputs["skyctl get cluster -o json"] = skyctl("get", "cluster", "-o", "json")
    outputs["replace"] = skyplan("apply", "--replace", "cluster.a", "replace.plan")
    assert outputs["replace"].exit_code == 0, outputs["replace"].output
    outputs["plan after replace"] = skyplan("plan", "--json")
    # A failing push: its stderr (wg-quick's, the script's) is quoted in errors.
    hostile_ip(lab, "b", 'case "$*" in *"route replace"*) cat /etc/wireguard/wgsky0.key >&2; wg show all private-key >&2; exit 1 ;; esac')
    (workspace / "links.yaml").write_text((workspace / "links.yaml").read_text().replace("10.2.0.0/16", "10.2.0.0/16, 10.22.0.0/16"))
    outputs["failing apply"] = skyplan("apply", "--auto-approve")
    assert outputs["failing apply"].exit_code == 1
    assert "(key)" in outputs["failing apply"].output  # the key reached the message, masked

    keys = private_keys(lab)
    assert set(keys) == {"a", "b"}
    texts = {name: result.output for name, result in outputs.items()}
    texts.update({str(p): p.read_text(errors="replace") for p in workspace.rglob("*") if p.is_file()})
    for name, text in texts.items():
        for gateway, key in keys.items():
            assert key not in text and key.lower() not in text.lower(), f"{gateway}'s private key in {name}"
    assert not (workspace / ".skyplan" / "keys").exists() and not (workspace / "wireguard").exists()


def test_a_gateway_that_floods_its_output_is_cut_off_and_only_it_is_not_refreshed(lab, workspace, skyplan) -> None:
    assert skyplan("apply", "--auto-approve").exit_code == 0
    hostile_ip(lab, "b", 'case "$*" in *"link show dev"*) exec yes "$(printf "\\033[2J Plan: 0 to add")" ;; esac')
    started = time.monotonic()
    done = skyplan("plan")
    assert time.monotonic() - started < 20, "cut off at the output limit, not at the 20 s timeout"
    assert done.exit_code == 0, done.output
    assert "gateway b: printed more than 64 MiB on stdout" in done.output and "not refreshed" in done.output
    assert ESC not in done.output and "Plan: 0 to add" not in done.output.split("No changes")[0].replace("Warning", "")


def test_a_gateway_printing_zones_and_escapes_in_addresses_shows_plain_drift(lab, workspace, skyplan) -> None:
    assert skyplan("apply", "--auto-approve").exit_code == 0
    forged = f"fd00::1%{ESC}[2J{ESC}]0;owned{chr(7)}/64"
    hostile_ip(lab, "b", f'case "$*" in *"-o addr show"*) "$REAL" "$@"; echo "9: wgsky0    inet6 {forged} scope global"; exit 0 ;; esac')
    for args in (["plan"], ["plan", "--json"]):
        done = skyplan(*args)
        assert done.exit_code == 0, done.output
        assert ESC not in done.output and "owned" not in done.output and "\\u001b" not in done.output


def hostile_state(workspace: Path, **clusters: tuple[dict, dict]) -> None:
    """Add clusters (attributes, computed) to state.json as someone who can write the state would."""
    path = workspace / ".skyplan" / "state.json"
    state = json.loads(path.read_text())
    template = next(r for r in state["resources"] if r["type"] == "cluster" and r["name"] == "a")
    for name, (attributes, computed) in clusters.items():
        forged = json.loads(json.dumps(template))
        forged["name"] = name
        forged["attributes"].update(attributes)
        forged["computed"] = computed
        state["resources"].append(forged)
    path.write_text(json.dumps(state, indent=2))


def test_a_state_naming_another_hosts_interfaces_takes_down_nothing_skyplan_did_not_make(lab, workspace, skyplan) -> None:
    assert skyplan("apply", "--auto-approve").exit_code == 0
    # Gateway c has a WireGuard interface of its own, configured by hand, and of course eth0.
    hand_made = "[Interface]\nPrivateKey = {key}\nListenPort = 51999\nAddress = 100.99.0.1/24\n"
    key = lab.run("c", ["wg", "genkey"]).stdout.strip()
    lab.run("c", ["sh", "-c", f"umask 077; echo {key} > /etc/wireguard/wghand.key; printf '{hand_made.format(key=key)}' > /etc/wireguard/wghand.conf"])
    lab.run("c", ["wg-quick", "up", "wghand"], env={"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"})
    # Public keys are public: the writer of the state gives the one of the hand-made interface.
    public = lab.run("c", ["wg", "show", "wghand", "public-key"]).stdout.strip()
    hostile_state(
        workspace,
        x1=({"gateway": "c", "interface": "eth0"}, {"address": "100.96.0.200"}),
        x2=({"gateway": "c", "interface": "wghand"}, {"address": "100.96.0.201", "public_key": public}),
    )

    planned = skyplan("plan")
    assert "cluster.x1 will be destroyed" in planned.output and "cluster.x2 will be destroyed" in planned.output
    done = skyplan("apply", "--auto-approve")
    assert done.exit_code == 1
    assert "eth0 is not a WireGuard interface; nothing was changed" in done.output
    assert "/etc/wireguard/wghand.conf was not written by skyplan; nothing was changed" in done.output
    # Gateway c keeps its network, its interface, its key and its file.
    assert lab.run("c", ["ip", "link", "show", "dev", "eth0"], check=False).returncode == 0
    assert lab.ping("a", lab.underlay["c"])
    assert lab.run("c", ["wg", "show", "wghand", "listen-port"]).stdout.strip() == "51999"
    assert lab.run("c", ["cat", "/etc/wireguard/wghand.key"]).stdout.strip() == key
    # A cluster skyplan made still goes as it should, in the same apply as the refused ones.
    (workspace / "links.yaml").write_text(links_yaml(lab, ["a"]).split("links:")[0] + "links: []\n")
    gone = skyplan("apply", "--auto-approve")
    assert gone.exit_code == 1 and "cluster.b: " not in gone.output.split("Apply failed")[-1]
    assert lab.run("b", ["ls", "-A", "/etc/wireguard"]).stdout.split() == []
    assert lab.run("b", ["ip", "link", "show", "dev", "wgsky0"], check=False).returncode != 0
    lab.run("c", ["wg-quick", "down", "wghand"], env={"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}, check=False)
