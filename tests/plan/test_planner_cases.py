"""The planner, driven by data: tests/plan/cases/*.yaml hold desired, prior, actual and the plan expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from skyplan.errors import PlanError
from skyplan.plan.model import Action, DesiredResource
from skyplan.plan.planner import plan
from skyplan.sdk import Reading
from skyplan.state.model import ResourceState, ResourceStatus, RunInfo, State

CASES = sorted(Path(__file__).with_name("cases").glob("*.yaml"))
COMPUTED = {"cluster": ("address", "public_key")}
# As the WireGuard provider declares: a key lives where it was born.
REPLACE_ON_CHANGE = {"cluster": {"gateway": "its gateway changed: a new key is generated where it now lives"}}
# And an external peer's key lives elsewhere: becoming one, or no longer being one, swaps keys.
REPLACE_ON_PRESENCE = {"cluster": {"public_key": "it became or stopped being an external peer: its key now lives elsewhere"}}


def _desired(raw: dict, owner: str) -> dict[str, DesiredResource]:
    resources = {}
    for address, attributes in (raw or {}).items():
        kind, name = address.split(".", 1)
        resources[address] = DesiredResource(type=kind, name=name, attributes=attributes, managed_by=owner)
    return resources


def _prior(raw) -> State | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        raw = {"resources": raw}
    resources = []
    for item in raw.get("resources", []):
        kind, name = item["address"].split(".", 1)
        resources.append(
            ResourceState(
                type=kind,
                name=name,
                managed_by=item.get("managed_by", "file"),
                attributes=item["attributes"],
                computed=item.get("computed", {}),
                status=ResourceStatus(phase=item.get("status", "INIT"), reason=item.get("reason"), since="2026-01-01T00:00:00Z"),
                created="2026-01-01T00:00:00Z",
                pending=item.get("pending"),
                moved_from=item.get("moved_from"),
            )
        )
    interrupted = RunInfo(**raw["interrupted"]) if "interrupted" in raw else None
    return State(lineage="test-lineage", serial=7, resources=resources, interrupted=interrupted)


def _actual(raw: dict | None) -> dict[str, Reading]:
    return {
        address: Reading(
            address,
            r["expected"],
            r["found"],
            replace=r.get("replace", False),
            reason=r.get("reason", ""),
            conflict=r.get("conflict", False),
        )
        for address, r in (raw or {}).items()
    }


def test_cases_replace_what_the_wireguard_provider_replaces():
    from skyplan_wireguard import WireGuardProvider

    assert WireGuardProvider.replace_on_change == REPLACE_ON_CHANGE
    assert WireGuardProvider.replace_on_presence == REPLACE_ON_PRESENCE
    assert WireGuardProvider.computed_attributes == COMPUTED


def _run(case: dict):
    owner = case.get("owner", "file")
    return lambda: plan(
        _desired(case["desired"], owner),
        _prior(case["prior"]),
        _actual(case.get("actual")),
        owner=owner,
        scope=case.get("scope"),
        mode=case.get("mode", "normal"),
        computed=COMPUTED,
        planned=case.get("planned"),
        replace=case.get("replace", []),
        moves=[(m["from"], m["to"]) for m in case.get("moved", [])],
        replace_on_change=REPLACE_ON_CHANGE,
        replace_on_presence=REPLACE_ON_PRESENCE,
    )


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_shortcuts_plan_what_the_full_steps_plan(path: Path, monkeypatch):
    """The planner's shortcuts for a resource recorded as desired (planner._unchanged) and for
    one the state lacks (planner._created) give the very change _change would: every case plans
    the same, field for field, without them."""
    case = YAML(typ="safe").load(path.read_text())
    if "error" in case["expect"]:
        return
    run = _run(case)
    shortcut = run()
    taken = []
    created = []

    def counted(*args):
        found = unchanged(*args)
        taken.append(found is not None)
        return None

    from skyplan.plan import planner

    unchanged = planner._unchanged
    monkeypatch.setattr(planner, "_unchanged", counted)
    monkeypatch.setattr(planner, "_created", lambda address, want, *rest: created.append(address) or planner._change(
        address, want, None, None, *rest, False))
    full = run()
    assert full.model_dump() == shortcut.model_dump()
    assert [c.model_fields_set for c in full.changes] == [c.model_fields_set for c in shortcut.changes]
    # Every no-op that is not a move is the shortcut's, and nothing else is.
    assert sum(taken) == sum(1 for c in full.changes if c.action is Action.NOOP and not c.previous_address)
    # Every create of a resource the state lacks is the other's.
    assert created == [c.address for c in full.changes if c.action is Action.CREATE and c.reason is None]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_planner_case(path: Path):
    case = YAML(typ="safe").load(path.read_text())
    expect = case["expect"]
    run = _run(case)
    if "error" in expect:
        with pytest.raises(PlanError) as caught:
            run()
        assert str(caught.value) == expect["error"]
        return

    result = run()
    by_address = {c.address: c for c in result.changes}
    assert {a: c.action.value for a, c in by_address.items()} == expect["changes"]
    assert [c.address for c in result.changes] == sorted(by_address), "changes must be sorted by address"
    for address, names in expect.get("attribute_changes", {}).items():
        assert [a.path for a in by_address[address].attribute_changes] == names
    for address, names in expect.get("forces_replacement", {}).items():
        assert [a.path for a in by_address[address].attribute_changes if a.forces_replacement] == names
    for address, names in expect.get("after_unknown", {}).items():
        assert by_address[address].after_unknown == names
    for address, reason in expect.get("reasons", {}).items():
        assert by_address[address].reason == reason
    for address, token in expect.get("action_reasons", {}).items():
        assert by_address[address].action_reason == token
    for address, owner_name in expect.get("managed_by", {}).items():
        assert by_address[address].managed_by == owner_name
    assert {a: c.previous_address for a, c in by_address.items() if c.previous_address} == expect.get("moved", {})
    expected_tokens = {a: token for a, token in expect.get("action_reasons", {}).items() if token}
    assert {a: c.action_reason for a, c in by_address.items() if c.action_reason} == expected_tokens
    for address, values in expect.get("planned", {}).items():
        assert by_address[address].planned == values
    for address, attributes in expect.get("after", {}).items():
        assert by_address[address].after == attributes
    if "drift" in expect:
        assert {d.address: [c.path for c in d.changes] for d in result.drift} == expect["drift"]
    else:
        assert result.drift == []
    assert result.notes == expect.get("notes", [])
    if "summary" in expect:
        assert result.summary.model_dump() == expect["summary"]
    assert result.has_changes == any(c.action is not Action.NOOP or c.previous_address for c in result.changes)
    if "has_changes" in expect:
        assert result.has_changes == expect["has_changes"]
