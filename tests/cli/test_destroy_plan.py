"""`plan --destroy`: the plan that `skyplan destroy` would carry out, to review or save and apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.workspaces import links_yaml

EVERYTHING = ["cluster.ap-south", "cluster.eu-central", "cluster.us-west", "link.us-ap", "link.us-eu"]


def state_addresses(workspace: Path) -> list[str]:
    document = json.loads((workspace / ".skyplan/state.json").read_text())
    return sorted(f"{r['type']}.{r['name']}" for r in document["resources"])


def confs(workspace: Path) -> list[str]:
    return sorted(p.parent.name for p in (workspace / "wireguard").rglob("*.conf"))


def plan_text_of(output: str) -> str:
    """The plan part of destroy's output: up to the summary line."""
    return output[: output.index("to destroy.") + len("to destroy.")]


def test_plan_destroy_shows_what_destroy_does_and_changes_nothing(applied, skyplan):
    before = (applied / ".skyplan/state.json").read_bytes()
    shown = skyplan("plan", "--destroy")
    assert shown.exit_code == 0, shown.output
    for address in EVERYTHING:
        assert f"  # {address} will be destroyed\n" in shown.output
    assert shown.output.endswith("Plan: 0 to add, 0 to change, 5 to destroy.\n")
    assert (applied / ".skyplan/state.json").read_bytes() == before
    assert confs(applied) == ["ap-south", "eu-central", "us-west"]
    destroyed = skyplan("destroy", "--auto-approve")
    assert plan_text_of(destroyed.output) == plan_text_of(shown.output)


@pytest.mark.parametrize(
    ("extra", "destroyed"),
    [
        ((), EVERYTHING),
        (("--target", "cluster.ap-south"), ["cluster.ap-south", "link.us-ap"]),
        # link.us-ap stays with its cluster, and so does cluster.us-west, which it joins.
        (("--exclude", "cluster.ap-south"), ["cluster.eu-central", "link.us-eu"]),
    ],
    ids=["all", "target", "exclude"],
)
def test_plan_destroy_json(applied, skyplan, extra, destroyed):
    result = skyplan("plan", "--destroy", "--json", *extra)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    changes = {c["address"]: c["change"] for c in document["resource_changes"] if c["change"]["actions"] != ["no-op"]}
    assert sorted(changes) == destroyed
    assert all(change["actions"] == ["delete"] and change["after"] is None for change in changes.values())
    assert document["summary"]["add"] == document["summary"]["change"] == 0
    assert document["summary"]["destroy"] == len(destroyed)
    assert document["summary"]["addresses"]["delete"] == destroyed
    applied_now = skyplan("destroy", "--auto-approve", *extra)
    assert f"Destroy complete! Resources: {len(destroyed)} destroyed." in applied_now.output


def test_a_saved_destroy_plan_is_applied_as_saved(applied, skyplan):
    saved = skyplan("plan", "--destroy", "--out", "destroy.plan")
    assert saved.exit_code == 0
    assert "To perform exactly these actions, run: skyplan apply --destroy destroy.plan" in saved.output
    assert "Plan: 0 to add, 0 to change, 5 to destroy." in skyplan("show", "destroy.plan").output
    assert json.loads(skyplan("show", "destroy.plan", "--json").output)["summary"]["destroy"] == 5
    assert state_addresses(applied) == EVERYTHING, "saving a plan changes nothing"
    # A plan file decides nothing: the destroy is asked for again on the command line.
    undeclared = skyplan("apply", "destroy.plan")
    assert undeclared.exit_code == 1 and "says it was made with --destroy" in undeclared.output
    assert state_addresses(applied) == EVERYTHING
    result = skyplan("apply", "--destroy", "destroy.plan")
    assert result.exit_code == 0, result.output
    assert "Destroy complete! Resources: 5 destroyed." in result.output
    assert state_addresses(applied) == []
    assert confs(applied) == []
    again = skyplan("apply", "--destroy", "destroy.plan")
    assert again.exit_code == 1 and "Saved plan is stale" in again.output


def test_a_saved_destroy_plan_is_refused_once_the_state_moved_on(applied, skyplan):
    skyplan("plan", "--destroy", "--out", "destroy.plan")
    # The state moves on while links.yaml stays as it was.
    assert skyplan("apply", "--auto-approve", "--replace", "cluster.us-west").exit_code == 0
    refused = skyplan("apply", "--destroy", "destroy.plan")
    assert refused.exit_code == 1 and "Saved plan is stale" in refused.output
    assert state_addresses(applied) == EVERYTHING


def test_plan_destroy_detailed_exitcode(applied, skyplan):
    assert skyplan("plan", "--destroy", "--detailed-exitcode").exit_code == 2
    skyplan("destroy", "--auto-approve")
    nothing = skyplan("plan", "--destroy", "--detailed-exitcode")
    assert (nothing.exit_code, nothing.output) == (0, "No changes. Links match the configuration.\n")


OWNED = links_yaml(
    [("a", "192.0.2.1:51820", ["10.1.0.0/16"]), ("b", "192.0.2.2:51820", ["10.2.0.0/16"]), ("c", "192.0.2.3:51820", ["10.3.0.0/16"])],
    [("a-b", "a", "b")],
)


def test_plan_destroy_keeps_what_skyctl_links_still_use(workspace, skyplan, skyctl):
    (workspace / "links.yaml").write_text(OWNED)
    skyplan("apply", "--auto-approve")
    assert skyctl("create", "link", "adhoc", "-s", "b", "-t", "c").exit_code == 0
    shown = skyplan("plan", "--destroy", "--compact")
    assert shown.exit_code == 0, shown.output
    assert [line.split()[-1] for line in shown.output.splitlines() if line.strip().startswith("-")] == ["cluster.a", "link.a-b"]
    assert "Note: cluster.b is kept: link.adhoc (not managed by this file) still joins it." in shown.output
    assert "Note: cluster.c is kept: link.adhoc (not managed by this file) still joins it." in shown.output
    document = json.loads(skyplan("plan", "--destroy", "--json").output)
    assert document["summary"]["addresses"]["delete"] == ["cluster.a", "link.a-b"]
    skyplan("plan", "--destroy", "--out", "d.plan")
    assert "Destroy complete! Resources: 2 destroyed." in skyplan("apply", "--destroy", "d.plan").output
    assert state_addresses(workspace) == ["cluster.b", "cluster.c", "link.adhoc"]
