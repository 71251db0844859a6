"""Hand-made WireGuard hosts adopted over SSH: `skyplan import --gateway`, then plan and apply.

Three gateways (`a`, `b`, `c`), each a network and mount namespace with its own sshd, are set up
the way people set hosts up by hand: a wg-quick file in /etc/wireguard and `wg-quick up wg0`, a
full mesh with a preshared key on the a-b peering. a keeps its key only in the file's PrivateKey
line; b in a file of another name that a PostUp line loads (so only the running interface has it
where skyplan looks); c in /etc/wireguard/wg0.key, where skyplan's apply expects it. The import
reads them through the lab's ssh config (known_hosts strict); the plan after it adds and replaces
nothing; apply writes skyplan's files without dropping a session: the handshakes are the ones
from before, the tunnels still carry pings, and no private or preshared key ever reached the
controller's disk.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from skyplan_wireguard import keys

from .gateways import GatewayLab, running_lab
from .netns import WIREGUARD_GO_ENV, parse_wg_dump

pytestmark = pytest.mark.e2e

HOSTS = ("a", "b", "c")
OVERLAY = {"a": "10.77.0.1", "b": "10.77.0.2", "c": "10.77.0.3"}
KEY_FILES = {"b": "/etc/wireguard/secret-of-b", "c": "/etc/wireguard/wg0.key"}
SUBNETS = {"a": "10.61.0.0/16", "b": "10.62.0.0/16", "c": "10.63.0.0/16"}


class Secrets:
    """The hosts' keys, made here and written onto the hosts only; repr shows none of them."""

    def __init__(self) -> None:
        self.private = {h: keys.generate() for h in HOSTS}
        self.public = {h: keys.public_key(k) for h, k in self.private.items()}
        self.psk_ab = keys.generate()

    def all(self) -> list[str]:
        return [*self.private.values(), self.psk_ab]

    def __repr__(self) -> str:
        return "Secrets(...)"


def hand_written(lab: GatewayLab, host: str, secrets: Secrets) -> str:
    """host's wg-quick file as a person writes it: /24 addresses, comments naming the peers."""
    lines = ["[Interface]", f"# {host}, set up by hand", f"Address = {OVERLAY[host]}/24", "ListenPort = 51820"]
    if host == "a":
        lines.append(f"PrivateKey = {secrets.private[host]}")
    else:
        lines.append(f"PostUp = wg set %i private-key {KEY_FILES[host]}")
    for peer in HOSTS:
        if peer == host:
            continue
        lines += ["", f"# {peer}", "[Peer]", f"PublicKey = {secrets.public[peer]}"]
        if {host, peer} == {"a", "b"}:
            lines.append(f"PresharedKey = {secrets.psk_ab}")
        lines += [f"AllowedIPs = {OVERLAY[peer]}/32, {SUBNETS[peer]}", f"Endpoint = {lab.endpoint(peer)}", "PersistentKeepalive = 25"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def lab(gateway_prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayLab]:
    with pytest.MonkeyPatch.context() as patch, running_lab(list(HOSTS), tmp_path_factory.mktemp("import-gateways"), patch) as lab:
        yield lab


@pytest.fixture
def workspace(lab: GatewayLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lab.reset()
    folder = tmp_path / "workspace"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in ("SKYPLAN_BACKEND", "SKYPLAN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    shutil.copy(lab.ssh_config, folder / "ssh_config")
    return folder


def bring_up_by_hand(lab: GatewayLab, secrets: Secrets) -> None:
    for host in HOSTS:
        lab.path_on(host, "/etc/wireguard/wg0.conf").write_text(hand_written(lab, host, secrets))
        lab.path_on(host, "/etc/wireguard/wg0.conf").chmod(0o600)
        if host in KEY_FILES:
            key = lab.path_on(host, KEY_FILES[host])
            key.write_text(secrets.private[host] + "\n")
            key.chmod(0o600)
        lab.run(host, ["wg-quick", "up", "wg0"], env=WIREGUARD_GO_ENV)
    for host in HOSTS:
        for peer in HOSTS:
            if peer != host:
                assert reaches(lab, host, OVERLAY[peer]), f"{host} cannot reach {peer} over the hand-made tunnels"


def reaches(lab: GatewayLab, source: str, address: str, seconds: float = 12.0) -> bool:
    """An answer within a few seconds: a first handshake lost to a peer not up yet is retried after 5 s."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if lab.ping(source, address, attempts=1):
            return True
        time.sleep(0.1)
    return False


def skyplan(*args: str, code: int = 0) -> str:
    from skyplan.cli.skyplan_cmd import main

    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, f"skyplan {' '.join(args)} exited with {result.exit_code}, not {code}:\n{result.output}"
    return result.output


def running(lab: GatewayLab, host: str) -> dict:
    """What the host's interface runs with (no private key), and each peer's latest handshake."""
    dump = parse_wg_dump(lab.run(host, ["wg", "show", "wg0", "dump"]).stdout)
    psks = dict(line.split("\t") for line in lab.run(host, ["wg", "show", "wg0", "preshared-keys"]).stdout.splitlines())
    return {
        "public_key": dump.public_key,
        "listen_port": dump.listen_port,
        "peers": {
            k: (sorted(p.allowed_ips), p.endpoint, p.persistent_keepalive, keys.public_key(psks[k]) if psks[k] != "(none)" else None)
            for k, p in dump.peers.items()
        },
        "handshakes": {k: p.latest_handshake for k, p in dump.peers.items()},
    }


def controller_files(workspace: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in workspace.rglob("*") if p.is_file() and not p.is_symlink())


GATEWAYS = [arg for host in HOSTS for arg in ("--gateway", host)]


def test_hand_made_gateways_are_adopted_and_apply_keeps_their_sessions(lab: GatewayLab, workspace: Path) -> None:
    secrets = Secrets()
    bring_up_by_hand(lab, secrets)
    before = {h: running(lab, h) for h in HOSTS}
    assert all(all(before[h]["handshakes"].values()) for h in HOSTS)

    shown = skyplan("import", *GATEWAYS, "--ssh-config", "ssh_config")
    assert "from gateway a: its keys stay there" in shown
    assert "a:/etc/wireguard/wg0.conf" in shown and "PostUp is not carried" in shown
    for host in ("a", "b"):
        assert f"gateway {host} keeps the key of wg0 in no key file: import has the host copy it" in shown
    assert not (workspace / "links.yaml").exists()  # a preview writes nothing, anywhere
    assert not lab.path_on("a", "/etc/wireguard/wg0.key").exists()

    written = skyplan("import", *GATEWAYS, "--ssh-config", "ssh_config", "--auto-approve")
    assert "Import complete!" in written
    config = (workspace / "links.yaml").read_text()
    for host in HOSTS:
        assert f"gateway: {host}\n" in config and f"address: {OVERLAY[host]}\n" in config
    assert "interface: wg0" in config and "config: ssh_config" in config
    assert "preshared_key: true" in config  # the a-b link, its key left on a and b
    # a's key (from its file) and b's (from its running interface) are now in the key file that
    # apply expects, private to root; c's own key file was left as it was.
    for host in HOSTS:
        key_file = lab.path_on(host, "/etc/wireguard/wg0.key")
        assert key_file.read_text().strip() == secrets.private[host]
        assert key_file.stat().st_mode & 0o077 == 0

    plan = json.loads(skyplan("plan", "--json"))
    assert plan["summary"]["add"] == 0 and plan["summary"]["destroy"] == 0
    actions = {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]}
    assert all(a in (["no-op"], ["update"]) for a in actions.values()), actions
    # What the plan would put right on the hosts is skyplan's own file and the /24 addresses
    # (one /32 each, routes per AllowedIPs); no peer of any host, and no link.
    drifted = {d["address"] for d in plan.get("resource_drift", [])}
    assert drifted <= {f"cluster.{h}" for h in HOSTS}, drifted

    applied = skyplan("apply", "--auto-approve")
    assert "Apply complete! Resources: 0 added" in applied and "0 destroyed" in applied
    after = {h: running(lab, h) for h in HOSTS}
    for host in HOSTS:
        assert {k: v for k, v in after[host].items() if k != "handshakes"} == {k: v for k, v in before[host].items() if k != "handshakes"}
        for peer, handshake in before[host]["handshakes"].items():
            assert after[host]["handshakes"][peer] >= handshake > 0, f"{host}'s session with {peer} was reset"
        assert lab.path_on(host, "/etc/wireguard/wg0.conf").read_text().startswith("# Generated by skyplan for cluster")
    for host in HOSTS:
        for peer in HOSTS:
            if peer != host:
                assert reaches(lab, host, OVERLAY[peer]), f"{host} cannot reach {peer} after apply"
    # The a-b peering still runs the preshared key it had, on both ends.
    for host, peer in (("a", "b"), ("b", "a")):
        assert after[host]["peers"][secrets.public[peer]][3] == keys.public_key(secrets.psk_ab)
    assert "No changes." in skyplan("plan")

    # Nothing secret on the controller: no key file of a gateway, no preshared key, in any file
    # or output of the workspace.
    on_disk = controller_files(workspace)
    for secret in secrets.all():
        assert secret not in on_disk
        assert secret not in shown + written + applied
    assert not list((workspace / ".skyplan").glob("keys/*"))


def test_a_missing_interface_and_a_refused_host_key_name_the_gateway_and_write_nothing(lab: GatewayLab, workspace: Path) -> None:
    secrets = Secrets()
    bring_up_by_hand(lab, secrets)
    output = skyplan("import", *GATEWAYS, "--ssh-config", "ssh_config", "--interface", "wg9", "--auto-approve", code=1)
    assert "gateway a runs no WireGuard interface wg9" in output and "Traceback" not in output
    assert not (workspace / "links.yaml").exists() and not (workspace / ".skyplan").exists()

    lab.known_hosts.write_text(lab.host_key_line("a") + "\n" + lab.host_key_line("c") + "\n")  # b's key unknown
    output = skyplan("import", *GATEWAYS, "--ssh-config", "ssh_config", "--auto-approve", code=1)
    assert "gateway b: host key not accepted" in output and "Traceback" not in output
    assert not (workspace / "links.yaml").exists() and not (workspace / ".skyplan").exists()
    for host in HOSTS:
        assert (host == "c") == lab.path_on(host, "/etc/wireguard/wg0.key").exists()
