"""The JSON plan, shaped like Terraform's `show -json` so existing policy tools can read it.

Terraform's tools (conftest policies, checkov's terraform_plan framework, plan summarisers)
read `resource_changes[].mode`, `planned_values.root_module.resources[]`, `prior_state.values`
and a top-level `terraform_version`; without them they match nothing and report a pass. The
skyplan-only fields (`drift`, `summary`, `notes`, `managed_by`, `attribute_changes`) stay beside
them. Nothing secret is in a plan to begin with: private and preshared keys never reach one.
"""

from __future__ import annotations

import json
from typing import Any

from skyplan.plan.model import Action, Plan, ResourceChange
from skyplan.state.model import now_iso

# The version of the JSON representation, as Terraform numbers its own; not skyplan's version.
JSON_FORMAT_VERSION = "1.0"


def _resource_head(address: str, kind: str, name: str, provider_name: str) -> dict[str, Any]:
    return {"address": address, "mode": "managed", "type": kind, "name": name, "provider_name": provider_name}


def after_values(change: ResourceChange) -> dict[str, Any] | None:
    """Every value known at plan time: the attributes, and the computed values that are kept."""
    if change.after is None:
        return None
    kept = {k: v for k, v in change.known_computed.items() if k not in change.after_unknown}
    return {**change.after, **kept, **change.planned}


def _change_document(change: ResourceChange, provider_name: str) -> dict[str, Any]:
    after = after_values(change)
    document = {
        **_resource_head(change.address, change.type, change.name, provider_name),
        "managed_by": change.managed_by,
        **({"previous_address": change.previous_address} if change.previous_address else {}),
        "change": {
            "actions": change.action.json_actions,
            "before": change.before,
            "after": after,
            "after_unknown": {key: True for key in change.after_unknown} if after is not None else False,
            # No value skyplan plans is sensitive: keys never reach a plan. Terraform's shape is
            # an object mirroring the value, `false` where there is no value.
            "before_sensitive": {} if change.before is not None else False,
            "after_sensitive": {} if after is not None else False,
            "attribute_changes": [a.model_dump() for a in change.attribute_changes],
        },
    }
    if change.action_reason:
        document["action_reason"] = change.action_reason
    if change.reason:
        document["reason"] = change.reason
    return document


def _module_values(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"root_module": {"resources": resources}}


def _value_resource(head: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return {**head, "schema_version": 0, "values": values, "sensitive_values": {}}


def plan_document(plan: Plan, provider_name: str, *, timestamp: str | None = None) -> dict[str, Any]:
    """The plan as Terraform's JSON plan representation, with skyplan's own fields beside it.

    `prior_state.values` holds the recorded values of the resources this plan covers (a saved
    plan carries no more of the state, and `plan --json` and `show PLAN --json` must agree):
    resources left out of it (another owner's, or outside --target) are not in it.
    """
    summary = plan.summary
    planned = [
        _value_resource(_resource_head(c.address, c.type, c.name, provider_name), after_values(c) or {})
        for c in plan.changes
        if c.action is not Action.DELETE
    ]
    prior_resources = [
        _value_resource(_resource_head(c.address, c.type, c.name, provider_name), c.before)
        for c in plan.changes
        if c.before is not None
    ]
    prior_state = None
    if plan.prior_state is not None:
        prior_state = {
            "format_version": JSON_FORMAT_VERSION,
            "terraform_version": plan.skyplan_version,
            **plan.prior_state.model_dump(),
            "values": _module_values(prior_resources),
        }
    drift = [
        {
            **_resource_head(d.address, d.type, d.name, provider_name),
            "change": {
                "actions": ["update"],
                "before": {c.path: c.before for c in d.changes},
                "after": {c.path: c.after for c in d.changes},
                "after_unknown": {},
                "before_sensitive": {},
                "after_sensitive": {},
            },
            **({"reason": d.reason} if d.reason else {}),
        }
        for d in plan.drift
    ]
    return {
        "format_version": JSON_FORMAT_VERSION,
        # checkov's terraform_plan framework reads only documents that carry this key.
        "terraform_version": plan.skyplan_version,
        "skyplan_version": plan.skyplan_version,
        "mode": plan.mode,
        "timestamp": timestamp or now_iso(),
        "applyable": plan.has_changes,
        # Terraform calls a targeted plan incomplete: applying it leaves other changes undone.
        "complete": not plan.targets,
        "errored": False,
        "prior_state": prior_state,
        "planned_values": _module_values(planned),
        "resource_changes": [_change_document(c, provider_name) for c in plan.changes],
        "resource_drift": drift,
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


def render_plan_json(plan: Plan, provider_name: str, *, timestamp: str | None = None) -> str:
    document = plan_document(plan, provider_name, timestamp=timestamp)
    return json.dumps(document, sort_keys=False, separators=(",", ":")) + "\n"
