"""What apply prints: one line per finished resource, then the outcome."""

from __future__ import annotations

import json

from skyplan.apply import ApplyOutcome
from skyplan.plan.model import Action, Plan, ResourceChange
from skyplan.sdk import ResourceResult
from skyplan.render.plan_json import plan_document
from skyplan.render.style import PLAIN, Style

_DONE = {
    Action.CREATE: "Creation complete",
    Action.UPDATE: "Modifications complete",
    Action.DELETE: "Destruction complete",
    Action.REPLACE: "Replacement complete",
    Action.NOOP: "Move complete",  # only moves are no-ops that apply acts on
}


def render_result(change: ResourceChange, result: ResourceResult, style: Style = PLAIN) -> str:
    if result.ok:
        return f"{change.address}: {_DONE[change.action]}"
    return f"{change.address}: {style('Failed', 'red', 'bold')}: {result.error}"


def render_outcome(plan: Plan, outcome: ApplyOutcome, style: Style = PLAIN) -> str:
    added, changed, destroyed = outcome.counts(plan)
    if outcome.failed:
        lines = [style("Apply failed.", "red", "bold") + f" Resources: {added} added, {changed} changed, {destroyed} destroyed, {len(outcome.failed)} failed."]
        lines.extend(f"  {r.address}: {r.error}" for r in sorted(outcome.failed, key=lambda r: r.address))
        return "\n".join(lines) + "\n"
    if plan.mode == "destroy":
        return style(f"Destroy complete! Resources: {destroyed} destroyed.", "green", "bold") + "\n"
    return style(f"Apply complete! Resources: {added} added, {changed} changed, {destroyed} destroyed.", "green", "bold") + "\n"


def render_outcome_json(plan: Plan, outcome: ApplyOutcome | None, provider_name: str) -> str:
    results = outcome.results if outcome else []
    added, changed, destroyed = outcome.counts(plan) if outcome else (0, 0, 0)
    document = {
        "plan": plan_document(plan, provider_name),
        "results": [
            {"address": r.address, "ok": r.ok, **({"error": r.error} if r.error else {})}
            for r in sorted(results, key=lambda r: r.address)
        ],
        "outcome": {
            "added": added,
            "changed": changed,
            "destroyed": destroyed,
            "failed": len(outcome.failed) if outcome else 0,
            "serial": outcome.state.serial if outcome else (plan.prior_state.serial if plan.prior_state else 0),
        },
    }
    return json.dumps(document, separators=(",", ":")) + "\n"
