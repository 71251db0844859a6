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


def state_document(state: State | None, provider_name: str | None = None) -> dict[str, Any]:
    """`show --json` of the state, shaped like Terraform's state representation.

    Resources are under `values.root_module.resources`, where Terraform's tools look; skyplan's
    own fields (lineage, serial, owner, status) stay beside Terraform's.
    """
    from skyplan import __version__

    document: dict[str, Any] = {
        "format_version": "1.0",
        "terraform_version": __version__,
        "skyplan_version": __version__,
        "lineage": state.lineage if state else None,
        "serial": state.serial if state else 0,
    }
    resources = []
    for r in state.resources if state else []:
        head = {"address": r.address, "mode": "managed", "type": r.type, "name": r.name}
        if provider_name:
            head["provider_name"] = provider_name
        resources.append(
            {
                **head,
                "schema_version": r.schema_version,
                "values": {**r.attributes, **r.computed},
                "sensitive_values": {},
                "managed_by": r.managed_by,
                "status": r.status.model_dump(),
                "created": r.created,
                **({"pending": r.pending} if r.pending else {}),
            }
        )
    document["values"] = {"root_module": {"resources": resources}}
    return document
