"""Conftest-style Rego policies (examples/policies/rego) evaluated by regopy on real skyplan plans."""

from __future__ import annotations

import copy

import regopy

from tests.policy.conftest import POLICIES


def evaluate(document: dict) -> dict[str, list[str]]:
    """What conftest would report: `deny` and `warn` of package main, sorted."""
    interpreter = regopy.Interpreter()
    for path in sorted((POLICIES / "rego").glob("*.rego")):
        interpreter.add_module(path.name, path.read_text())
    interpreter.set_input(regopy.Input(document))
    found = {}
    for rule in ("deny", "warn"):
        output = interpreter.query(f"x := data.main.{rule}")
        found[rule] = sorted(output.results[0].bindings["x"])
    return found


def test_policies_report_exactly_what_the_plan_does(review_plan):
    assert evaluate(review_plan) == {
        "deny": [
            "cluster.ap-south would be destroyed (delete_because_no_resource_config)",
            "cluster.eu-central: endpoint 198.51.100.20:51821 is not on port 51820",
            "cluster.new-site: endpoint 192.0.2.44:4500 is not on port 51820",
        ],
        "warn": [
            "cluster.us-west gets a new key (replace_because_cannot_update): "
            "key file .skyplan/keys/us-west.key is missing: a new key must be generated and every peer updated",
        ],
    }


def test_the_key_rule_fires_on_a_key_changed_in_place(review_plan):
    # The rule is not vacuous: a plan whose update changes a key (or, as plans did before
    # computed values were kept in `after`, drops it) is denied.
    for tamper in ("changed", "dropped"):
        document = copy.deepcopy(review_plan)
        change = next(c for c in document["resource_changes"] if c["address"] == "cluster.eu-central")["change"]
        if tamper == "changed":
            change["after"]["public_key"] = "x" * 43 + "="
        else:
            del change["after"]["public_key"]
        assert "cluster.eu-central: public key changes in an in-place update" in evaluate(document)["deny"]


def test_unchanged_mesh_passes(basic, skyplan):
    import json

    skyplan("apply", "--auto-approve")
    document = json.loads(skyplan("plan", "--json").output)
    assert len(document["resource_changes"]) == 5
    assert evaluate(document) == {"deny": [], "warn": []}
