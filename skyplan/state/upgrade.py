"""Recorded resources brought to the provider's current schema before anything reads them.

A provider that adds a setting or reshapes a computed value raises its `schema_version` and
teaches `upgrade` the step (Terraform's UpgradeResourceState). The core calls it for every
resource the state recorded under an older version, before the hostile-state checks and the
planner see it, so an old state plans as if the current version had written it.
"""

from __future__ import annotations

from skyplan.errors import StateError
from skyplan.sdk import Provider, ResourceView
from skyplan.state.model import ResourceState, State


def upgrade_state(state: State, provider: Provider, where: str) -> State:
    """`state` with every resource in `provider`'s current schema; StateError if one cannot be."""
    current = type(provider).schema_version
    if all(r.schema_version == current for r in state.resources):
        return state  # the usual case: nothing to do, nothing copied
    resources: list[ResourceState] = []
    for index, resource in enumerate(state.resources):
        if resource.schema_version == current:
            resources.append(resource)
            continue
        if resource.schema_version > current:
            raise StateError(
                f"state {where} records {resource.address} in schema version {resource.schema_version} of provider "
                f"'{provider.name}', newer than this one's ({current}): it was written by a newer provider. Upgrade it"
            )
        view = ResourceView(resource.type, resource.name, dict(resource.attributes), dict(resource.computed))
        try:
            upgraded = provider.upgrade(view, resource.schema_version)
        except Exception as exc:  # noqa: BLE001 - a damaged entry must be a clear error, not a traceback
            raise StateError(
                f"state {where} is damaged: resources[{index}] ({resource.address}) cannot be upgraded from schema "
                f"version {resource.schema_version}: {exc}"
            ) from None
        if (upgraded.type, upgraded.name) != (resource.type, resource.name):
            raise StateError(f"provider '{provider.name}' renamed {resource.address} while upgrading it; an upgrade keeps addresses")
        resources.append(resource.model_copy(
            update={"attributes": upgraded.attributes, "computed": upgraded.computed, "schema_version": current}
        ))
    return state.model_copy(update={"resources": resources})
