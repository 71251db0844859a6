"""The cycle collector paused, and what a command builds frozen out of later collections
(skyplan/collector.py): never in library use, and never in a process that lives on.

A frozen object is never collected again: a cycle frozen with it outlives its use. A command that
runs once and exits loses nothing by that; a `skyctl get -w` that freezes on every redraw keeps
every cycle each redraw left (the JSON and YAML encoders make some) until it is stopped.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest


@pytest.fixture
def console_script(monkeypatch):
    """The process as the console scripts set it up (cli/entry.py); nothing stays frozen after."""
    from skyplan import collector

    monkeypatch.setattr(collector, "_SETTLING", False)
    collector.settle_in_this_process()
    yield
    gc.unfreeze()
    collector._KEPT.clear()  # what the test's commands held to "the end", which is this


@pytest.mark.parametrize("output", ["yaml", "json"])
def test_a_watch_keeps_no_redraws_garbage(applied: Path, skyctl, console_script, monkeypatch, output: str) -> None:
    import skyplan.cli.skyctl_cmd as cmd

    frozen: list[int] = []

    def fake_sleep(seconds):
        frozen.append(gc.get_freeze_count())
        if len(frozen) == 60:
            raise KeyboardInterrupt

    monkeypatch.setattr(cmd.time, "sleep", fake_sleep)
    result = skyctl("get", "link", "-w", "-o", output)
    assert result.exit_code == 0, result.output
    # Each redraw's encoder cycles, frozen by the next redraw's read of the state, were kept for
    # good: about 90 objects (8 KB) a redraw, 370 MB a day of watching at the default interval.
    assert frozen[-1] <= frozen[5], f"frozen objects grew from {frozen[5]} to {frozen[-1]} over 55 redraws"


def test_library_use_freezes_nothing(applied: Path, skyplan, skyctl) -> None:
    before = gc.get_freeze_count()
    assert "No changes." in skyplan("plan").output
    assert skyctl("get", "link").exit_code == 0
    assert gc.get_freeze_count() == before


def test_library_use_keeps_nothing_to_the_end(applied: Path, skyctl) -> None:
    from skyplan import collector

    assert skyctl("get", "link").exit_code == 0
    assert collector._KEPT == [], "a library caller's process lives on: what a get read must be freed"


def test_a_console_script_get_keeps_its_workspace_to_the_end(applied: Path, skyctl, console_script) -> None:
    from skyplan import collector
    from skyplan.workspace import Workspace

    assert skyctl("get", "link").exit_code == 0
    assert [type(kept) for kept in collector._KEPT] == [Workspace]
    # A watch lives on: nothing of its redraws is held.
    collector._KEPT.clear()
    collector.keep_collecting()
    collector.keep_to_the_end(object())
    assert collector._KEPT == []
