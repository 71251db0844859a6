"""The JSON plan, shaped like Terraform's `show -json` so existing policy tools can read it."""

from __future__ import annotations

import json
from typing import Any

from skyplan.plan.model import Plan


def plan_document(plan: Plan, provider_name: str) -> dict[str, Any]:
    summary = plan.summary
    return {
        "format_version": plan.format_version,
        "skyplan_version": plan.skyplan_version,
        "mode": plan.mode,
        "prior_state": plan.prior_state.model_dump() if plan.prior_state else None,
        "resource_changes": [
            {
                "address": c.address,
                "type": c.type,
                "name": c.name,
                "provider_name": provider_name,
                "managed_by": c.managed_by,
                **({"previous_address": c.previous_address} if c.previous_address else {}),
                "change": {
                    "actions": c.action.json_actions,
                    "before": c.before,
                    # Computed values known at plan time (a new address) are part of `after`.
                    "after": {**c.after, **c.planned} if c.after is not None else None,
                    "after_unknown": {key: True for key in c.after_unknown},
                    "attribute_changes": [a.model_dump() for a in c.attribute_changes],
                },
                # Terraform's token for tools; the English reason in a field of its own.
                **({"action_reason": c.action_reason} if c.action_reason else {}),
                **({"reason": c.reason} if c.reason else {}),
            }
            for c in plan.changes
        ],
        "drift": [
            {
                "address": d.address,
                "type": d.type,
                "name": d.name,
                "reason": d.reason,
                "changes": [a.model_dump() for a in d.changes],
            }
            for d in plan.drift
        ],
        "notes": list(plan.notes),
        "summary": {
            "add": summary.add,
            "change": summary.change,
            "destroy": summary.destroy,
            "addresses": {
                action: sorted(c.address for c in plan.changes if action in c.action.json_actions)
                for action in ("create", "update", "delete")
            },
        },
    }


def render_plan_json(plan: Plan, provider_name: str) -> str:
    return json.dumps(plan_document(plan, provider_name), sort_keys=False, separators=(",", ":")) + "\n"
