"""The sealed record of the last plan that found no changes (plan/unchanged.py): the same plan of
the same text and state, whose refresh finds nothing again, is not worked out again, and nothing
that changed since gets past the planner because of it.

Written as the attacker (or the hand editor) would: a changed text, a changed state, drift made
after the record was written, a record forged without the user's secret. Each test asserts that
the plan is exactly what it is with no record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skyplan.plan import unchanged

RECORD = Path(".skyplan/cache") / unchanged.RECORD


@pytest.fixture
def planned(monkeypatch) -> list[str]:
    """Each time the desired resources were built or the planner ran."""
    from skyplan import planning, workspace
    from skyplan.plan import planner

    calls: list[str] = []
    desired, plan = workspace.Workspace.desired, planner.plan
    monkeypatch.setattr(workspace.Workspace, "desired", lambda self, *a, **k: calls.append("desired") or desired(self, *a, **k))
    monkeypatch.setattr(planner, "plan", lambda *a, **k: calls.append("planner") or plan(*a, **k))
    assert planning  # make_plan imports the planner when it runs, and finds the counted one
    return calls


def test_the_same_plan_of_the_same_text_and_state_is_not_worked_out_again(applied: Path, skyplan, planned) -> None:
    first = skyplan("plan", "--no-color")
    assert first.exit_code == 0 and "No changes." in first.output and RECORD.exists()
    assert planned == ["desired", "planner"]
    planned.clear()
    second = skyplan("plan", "--no-color")
    assert (second.exit_code, second.output) == (first.exit_code, first.output)
    assert planned == []
    detailed = skyplan("plan", "--detailed-exitcode")
    assert detailed.exit_code == 0 and detailed.output == first.output and planned == []
    assert RECORD.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "args",
    [("plan", "--json"), ("plan", "--target", "link.us-eu"), ("plan", "--replace", "link.us-eu"), ("plan", "--out", "saved.plan"), ("apply", "--auto-approve")],
    ids=["json", "target", "replace", "out", "apply"],
)
def test_plans_other_than_a_whole_plan_shown_as_text_are_worked_out_in_full(applied: Path, skyplan, planned, args) -> None:
    assert skyplan("plan").exit_code == 0 and RECORD.exists()
    planned.clear()
    result = skyplan(*args)
    assert result.exit_code == 0, result.output
    assert "planner" in planned


def test_a_json_plan_with_the_record_is_the_full_plan(applied: Path, skyplan) -> None:
    assert skyplan("plan").exit_code == 0 and RECORD.exists()
    with_record = json.loads(skyplan("plan", "--json").output)
    RECORD.unlink()
    assert json.loads(skyplan("plan", "--json").output) == with_record
    assert with_record["resource_changes"]  # every resource, as no-ops, as Terraform lists them


def test_an_edited_text_is_planned_in_full(applied: Path, skyplan, planned) -> None:
    assert skyplan("plan").exit_code == 0
    config = applied / "links.yaml"
    config.write_text(config.read_text() + "# a comment\n")
    planned.clear()
    assert "No changes." in skyplan("plan").output
    assert "planner" in planned
    config.write_text(config.read_text().replace("10.30.0.0/16", "10.31.0.0/16"))
    result = skyplan("plan", "--no-color")
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in result.output, result.output


def test_drift_made_after_the_record_is_shown(applied: Path, skyplan, planned) -> None:
    assert skyplan("plan").exit_code == 0 and RECORD.exists()
    path = applied / "wireguard/us-west/wgsky0.conf"
    path.write_text(path.read_text() + "\n[Peer]\nPublicKey = " + "C" * 43 + "=\nAllowedIPs = 0.0.0.0/0\n")
    result = skyplan("plan", "--no-color")
    assert "Changed outside skyplan" in result.output and "Plan: 0 to add, 1 to change" in result.output, result.output


def test_an_edited_state_is_planned_in_full(applied: Path, skyplan, planned) -> None:
    assert skyplan("plan").exit_code == 0
    path = applied / ".skyplan" / "state.json"
    document = json.loads(path.read_text())
    # What the files cannot tell: who manages a link (the refresh finds them exactly as before).
    link = next(r for r in document["resources"] if (r["type"], r["name"]) == ("link", "us-eu"))
    link["managed_by"] = "skyctl"
    path.write_text(json.dumps(document, indent=2) + "\n")
    planned.clear()
    result = skyplan("plan", "--no-color")
    assert "planner" in planned and "Plan: 0 to add, 1 to change, 0 to destroy." in result.output, result.output


def test_a_plan_with_changes_records_nothing(basic: Path, skyplan) -> None:
    assert "5 to add" in skyplan("plan").output
    assert not RECORD.exists()


def test_a_record_forged_without_the_users_secret_is_not_believed(applied: Path, skyplan, planned) -> None:
    from skyplan import seal

    assert skyplan("plan").exit_code == 0
    body = seal.unseal("no-changes", RECORD.read_bytes(), applied)
    assert body is not None
    config = applied / "links.yaml"
    config.write_text(config.read_text().replace("10.30.0.0/16", "10.31.0.0/16"))
    # The attacker cannot know the new text's key without the secret, but try the old body too.
    for forged in (b"skyplan-sealed-1 " + b"0" * 64 + b"\n" + body,
                   b"skyplan-sealed-1 " + seal._mac(b"\x01" * seal.SECRET_BYTES, "no-changes", body).encode() + b"\n" + body):
        RECORD.write_bytes(forged)
        planned.clear()
        result = skyplan("plan", "--no-color")
        assert "1 to change" in result.output and "planner" in planned, result.output
