"""Views of the recorded state: `skyplan show`, `state list`, `state show`."""

from __future__ import annotations

from typing import Any

from skyplan.render.values import literal
from skyplan.state.model import ResourceState, State


def render_state(state: State | None) -> str:
    if state is None or not state.resources:
        return "The state is empty. Nothing has been applied yet.\n"
    blocks = [render_resource(r) for r in state.resources]
    return "\n".join(blocks)


def render_resource(resource: ResourceState) -> str:
    values: dict[str, Any] = {**resource.attributes, **resource.computed}
    values["managed_by"] = resource.managed_by
    values["status"] = resource.status.phase
    if resource.status.reason:
        values["status_reason"] = resource.status.reason
    if resource.pending:
        values["pending"] = resource.pending
    width = max(len(k) for k in values)
    lines = [f"# {resource.address}:", f'{resource.type} "{resource.name}" {{']
    for key in sorted(values):
        if values[key] is not None:
            lines.append(f"    {key.ljust(width)} = {literal(values[key])}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def state_document(state: State | None) -> dict[str, Any]:
    """`show --json` of the state, in the spirit of Terraform's `values` document."""
    if state is None:
        return {"format_version": "1.0", "lineage": None, "serial": 0, "values": {"resources": []}}
    return {
        "format_version": "1.0",
        "lineage": state.lineage,
        "serial": state.serial,
        "values": {
            "resources": [
                {
                    "address": r.address,
                    "type": r.type,
                    "name": r.name,
                    "managed_by": r.managed_by,
                    "values": {**r.attributes, **r.computed},
                    "status": r.status.model_dump(),
                    "created": r.created,
                    **({"pending": r.pending} if r.pending else {}),
                }
                for r in state.resources
            ]
        },
    }
