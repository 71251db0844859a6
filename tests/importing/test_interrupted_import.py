"""An import that fails or is cut short loses no key: undone when it can be, adopted by plan when not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skyplan.errors import StateError
from skyplan.state.local import FileStateStore

from .confs import semantic, stripped, write_hub_and_spoke


def test_a_state_that_cannot_be_written_undoes_the_import(skyplan, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = write_hub_and_spoke(workspace / "etc")

    def refuse(self, state) -> None:
        raise StateError("the disk is full")

    monkeypatch.setattr(FileStateStore, "write", refuse)
    result = skyplan("import", *map(str, files.files), "--auto-approve")
    assert result.exit_code == 1
    assert "the disk is full" in result.output
    assert not (workspace / "links.yaml").exists()
    assert sorted(p.name for p in (workspace / ".skyplan" / "keys").iterdir()) == []
    assert not (workspace / ".skyplan" / "state.json").exists()


def test_a_run_cut_short_before_the_state_is_written_converges_with_the_same_keys(skyplan, workspace: Path) -> None:
    files = write_hub_and_spoke(workspace / "etc")
    assert skyplan("import", *map(str, files.files), "--auto-approve").exit_code == 0
    # As if killed between links.yaml and the state: the keys and links.yaml are there, no state.
    (workspace / ".skyplan" / "state.json").unlink()
    plan = json.loads(skyplan("plan", "--json").output)
    assert plan["summary"]["add"] == 7
    assert skyplan("apply", "--auto-approve").exit_code == 0
    for name, original in zip(("hub", "spoke1", "spoke2"), files.files):
        written = workspace / "wireguard" / name / "wg0.conf"
        # The keys adopted are the files' own, and the preshared key the one both ends held.
        assert semantic(stripped(written)) == semantic(stripped(original)), name
