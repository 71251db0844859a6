"""A workspace that skyplan 0.1.0 wrote is read, upgraded and planned with no changes."""

from __future__ import annotations

import json
from pathlib import Path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "cache" not in p.parts}


def test_an_old_workspace_plans_no_changes(old_workspace: Path, skyplan) -> None:
    result = skyplan("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes. Links match the configuration." in result.output


def test_applying_to_an_old_workspace_changes_no_key_address_or_config(old_workspace: Path, skyplan, skyctl) -> None:
    before = json.loads((old_workspace / ".skyplan" / "state.json").read_text())
    files = {k: v for k, v in _snapshot(old_workspace).items() if not k.startswith(".skyplan/state.json")}
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    after = json.loads((old_workspace / ".skyplan" / "state.json").read_text())
    computed = lambda state: {r["name"]: r["computed"] for r in state["resources"]}  # noqa: E731
    assert computed(after) == computed(before)
    assert {k: v for k, v in _snapshot(old_workspace).items() if k in files} == files
    listed = skyctl("get", "link", "myLink")
    assert listed.exit_code == 0 and "myLink" in listed.output
