"""`skyctl get link` shows live phases: ACTIVE, INIT and FAILED with the reason, redrawn by -w."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest


def write_dump(workspace: Path, own: str, keys: dict[str, str], peer: str, age: int | None) -> None:
    """`wg show dump` of cluster `own`: a handshake with `peer` `age` seconds ago (None: never)."""
    seen = 0 if age is None else int(time.time()) - age
    text = f"(hidden)\t{keys[own]}\t51820\toff\n{keys[peer]}\t(none)\t192.0.2.9:51820\t100.96.0.9/32\t{seen}\t1\t2\t25\n"
    (workspace / f"{own}.dump").write_text(text)


@pytest.fixture
def linked(workspace, skyctl):
    """Clusters a and b linked by `ab`, with a status_command that prints each one's `<name>.dump`."""
    (workspace / "links.yaml").write_text(
        "version: 1\nprovider:\n  name: wireguard\n  status_command: [cat, '" + str(workspace) + "/{{ cluster }}.dump']\n"
    )
    assert skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820").exit_code == 0
    assert skyctl("create", "cluster", "b", "--endpoint", "192.0.2.2:51820").exit_code == 0
    assert skyctl("create", "link", "ab", "-s", "a", "-t", "b").exit_code == 0
    keys = {name: json.loads(skyctl("get", "cluster", name, "-o", "json").output)["status"]["public_key"] for name in "ab"}

    def handshakes(a_age: int | None, b_age: int | None) -> None:
        write_dump(workspace, "a", keys, "b", a_age)
        write_dump(workspace, "b", keys, "a", b_age)

    return handshakes


def phase_column(output: str) -> list[str]:
    return [line.split()[3] for line in output.splitlines()[1:] if line.strip()]


def test_a_link_silent_for_longer_than_180s_is_failed_with_the_reason(linked, skyctl):
    linked(400, 395)
    table = skyctl("get", "link")
    assert table.exit_code == 0 and phase_column(table.output) == ["FAILED"]
    shown = json.loads(skyctl("get", "link", "ab", "-o", "json").output)["status"]
    assert shown["phase"] == "FAILED"
    handshake = next(c for c in shown["conditions"] if c["type"] == "HandshakeObserved")
    assert handshake["status"] == "False" and handshake["reason"] == "HandshakeExpired"
    assert "no handshake for more than 180s" in handshake["message"]
    assert shown["reason"] == handshake["message"]
    assert "a last shook hands with b 4" in shown["reason"]  # 400 s, give or take the test's own time
    listing = json.loads(skyctl("get", "link", "-o", "json").output)
    assert [i["status"]["phase"] for i in listing["items"]] == ["FAILED"]


def test_fresh_handshakes_are_active_and_none_yet_is_init(linked, skyctl):
    linked(20, 25)
    assert phase_column(skyctl("get", "link").output) == ["ACTIVE"]
    shown = json.loads(skyctl("get", "link", "ab", "-o", "json").output)["status"]
    assert shown["phase"] == "ACTIVE" and "reason" not in shown
    linked(None, None)
    assert phase_column(skyctl("get", "link").output) == ["INIT"]


def test_watch_redraws_when_the_phase_changes_and_only_then(linked, skyctl, monkeypatch):
    import skyplan.cli.skyctl_cmd as cmd

    linked(10, 12)
    # What each pause lets happen on the gateways before the next look.
    events = [lambda: linked(11, 13), lambda: linked(500, 505), lambda: linked(501, 506), lambda: linked(2, 1)]

    real_sleep = time.sleep

    def fake_sleep(seconds):
        if seconds != cmd.WATCH_SECONDS:  # subprocess waits for the status command this way
            return real_sleep(seconds)
        if not events:
            raise KeyboardInterrupt
        events.pop(0)()

    monkeypatch.setattr(cmd.time, "sleep", fake_sleep)
    result = skyctl("get", "link", "-w")
    assert result.exit_code == 0, result.output
    tables = result.output.split("\n\n")
    # ACTIVE, (older handshake, same phase: no redraw), FAILED, (older still: none), ACTIVE again.
    assert [phase_column(t) for t in tables] == [["ACTIVE"], ["FAILED"], ["ACTIVE"]]
