"""`skyctl get link` on gateway clusters, end to end: phases from the gateways' own handshakes,
an unreachable gateway named with its error, and `-w` redrawing as the live data changes.

The CLI takes no clock and waiting 180 s is too slow, so the one FAILED test here moves the
clock of status (only) forward in this process: the gateways and their handshakes are real.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from .gateways import GatewayLab
from .test_gateways import reaches

pytestmark = pytest.mark.e2e


@pytest.fixture
def linked(gateway_lab: GatewayLab, workspace, skyplan, skyctl):
    """Gateways a and b linked by `a-b` and applied; c is not in the configuration."""
    lab = gateway_lab
    (workspace / "ssh_config").write_text(lab.ssh_config.read_text())
    (workspace / "links.yaml").write_text(
        "version: 1\nprovider:\n  name: wireguard\n  ssh: {config: ssh_config, timeout: 5s}\nclusters:\n"
        + "".join(f'  - {{name: {g}, endpoint: "{lab.endpoint(g)}", gateway: {g}}}\n' for g in ("a", "b"))
        + "links:\n  - {name: a-b, source: a, target: b}\n"
    )
    applied = skyplan("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    b_address = json.loads(skyctl("get", "cluster", "b", "-o", "json").output)["status"]["address"]
    # Within two handshake retries, as every gateway test gives a link just applied (reaches).
    assert reaches(lab, "a", b_address), "the link carries traffic"
    return lab


def phases(output: str) -> list[str]:
    return [line.split()[3] for line in output.splitlines()[1:] if line.strip()]


def test_linked_gateways_are_active_and_an_unreachable_one_is_named(linked: GatewayLab, skyctl):
    shown = json.loads(skyctl("get", "link", "a-b", "-o", "json").output)["status"]
    assert shown["phase"] == "ACTIVE", shown
    message = shown["conditions"][-1]["message"]
    assert message.startswith("a shook hands with b ") and "; b shook hands with a " in message

    linked.stop_sshd("b")
    table = skyctl("get", "link")
    assert table.exit_code == 0 and phases(table.output) == ["INIT"]
    shown = json.loads(skyctl("get", "link", "a-b", "-o", "json").output)["status"]
    assert shown["phase"] == "INIT"
    assert "b: gateway b: unreachable: " in shown["conditions"][-1]["message"]
    assert "a shook hands with b " in shown["conditions"][-1]["message"], "a still answers for its end"
    cluster = json.loads(skyctl("get", "cluster", "b", "-o", "json").output)["status"]
    assert cluster["phase"] == "INIT"
    assert cluster["conditions"][-1]["reason"] == "GatewayUnreachable" and cluster["conditions"][-1]["message"].startswith("gateway b: unreachable")


def test_watch_redraws_from_the_gateways(linked: GatewayLab, skyctl, monkeypatch):
    import skyplan.cli.skyctl_cmd as cmd

    real_sleep = time.sleep
    events = [lambda: linked.stop_sshd("b"), lambda: None, lambda: linked.start_sshd("b")]

    def fake_sleep(seconds):
        if seconds != cmd.WATCH_SECONDS:  # subprocess and ssh waits
            return real_sleep(seconds)
        if not events:
            raise KeyboardInterrupt
        events.pop(0)()

    monkeypatch.setattr(cmd.time, "sleep", fake_sleep)
    result = skyctl("get", "link", "-w")
    assert result.exit_code == 0, result.output
    # ACTIVE; b's sshd stops: INIT; (still down: no redraw); back: ACTIVE.
    assert [phases(table) for table in result.output.split("\n\n")] == [["ACTIVE"], ["INIT"], ["ACTIVE"]]


def test_a_link_whose_peer_went_down_is_failed_once_180s_pass(linked: GatewayLab, skyctl, monkeypatch):
    import skyplan_wireguard.status as status

    linked.run("b", ["wg-quick", "down", "wgsky0"])
    assert json.loads(skyctl("get", "link", "a-b", "-o", "json").output)["status"]["phase"] == "INIT"
    # 200 s later, as a's last handshake with b ages: nothing can have refreshed it, b is down.
    real = time.time
    monkeypatch.setattr(status, "time", SimpleNamespace(time=lambda: real() + 200))
    table = skyctl("get", "link")
    assert phases(table.output) == ["FAILED"]
    shown = json.loads(skyctl("get", "link", "a-b", "-o", "json").output)["status"]
    assert shown["phase"] == "FAILED"
    assert shown["reason"].startswith("a last shook hands with b 2")
    assert "b: gateway b: " in shown["reason"] and shown["reason"].endswith("no handshake for more than 180s")
    handshake = shown["conditions"][-1]
    assert (handshake["type"], handshake["status"], handshake["reason"]) == ("HandshakeObserved", "False", "HandshakeExpired")
