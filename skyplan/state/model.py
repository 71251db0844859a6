"""The state model: what skyplan last made real, and who manages each resource."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skyplan import __version__
from skyplan.sdk.resources import LinkEnds, ResourceType, address_problem

__all__ = ["ResourceType", "address_problem"]  # re-exported: the SDK defines them

STATE_FORMAT_VERSION = 1
_new_tuple = tuple.__new__

Phase = Literal["INIT", "ACTIVE", "FAILED"]
Owner = Literal["file", "skyctl"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ResourceStatus(Record):
    # ACTIVE is observed live, never stored; FAILED keeps why the last apply failed.
    phase: Phase = "INIT"
    reason: str | None = None
    since: str


class ResourceState(Record):
    type: ResourceType
    name: str
    managed_by: Owner = "file"
    attributes: dict[str, Any]
    computed: dict[str, Any] = Field(default_factory=dict)
    status: ResourceStatus
    created: str
    # Set before a provider acts and cleared when its result is recorded: a run killed in
    # between leaves it set, and the next plan knows to redo that action.
    pending: Literal["create", "update", "replace", "delete"] | None = None
    # The name it had before a move (a `moved` entry, `state mv`) that is not finished yet: its
    # files may still be under that name, and the next apply finishes moving them.
    moved_from: str | None = None
    # The provider's schema_version the attributes and computed values are in; states written
    # before versions were recorded (skyplan 0.1.0) hold none: 0. The core upgrades older ones
    # through the provider before anything else reads them (state/upgrade.py). Version 0 is
    # not written: such a state stays byte for byte what 0.1.0 wrote, and as large.
    schema_version: int = Field(default=0, ge=0, exclude_if=lambda version: version == 0)

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    @property
    def ends(self) -> LinkEnds:
        """A link's two clusters (a cluster has none: KeyError)."""
        attributes = self.attributes  # inlined link_ends: read for every link of every table
        return _new_tuple(LinkEnds, (attributes["source"], attributes["target"]))


class RunInfo(Record):
    """The run that is applying, kept while it runs, so an interruption can be explained."""

    id: str
    operation: str
    who: str
    started: str


class State(Record):
    version: int = STATE_FORMAT_VERSION
    serial: int = 0
    lineage: str
    skyplan_version: str = __version__
    resources: list[ResourceState] = Field(default_factory=list)
    interrupted: RunInfo | None = None

    @classmethod
    def new(cls) -> State:
        return cls(lineage=str(uuid.uuid4()))

    def by_address(self) -> dict[str, ResourceState]:
        # The address made here, not through the property: called several times per command
        # on every resource of the state.
        return {f"{r.type}.{r.name}": r for r in self.resources}

    def with_resources(self, resources: dict[str, ResourceState], **changes: Any) -> State:
        ordered = [resources[address] for address in sorted(resources)]
        return self.model_copy(update={"resources": ordered, **changes})


def check_shapes(state: State, required: dict[str, set[str]], where: str) -> None:
    """Refuse a state whose resources lack attributes every consumer relies on.

    The attributes are open dicts (providers add theirs), so pydantic cannot check them; a
    hand-edited or damaged state must stop here with a clear message, not deep in a provider.
    `required` holds the core's needs and those the provider declares; it is checked after the
    provider has upgraded each resource, so a setting added since a state was written is there.
    """
    from skyplan.errors import StateError

    # One pass, read for every resource of every command: attributes and the link's ends are
    # read straight from the dict, not through properties.
    for index, resource in enumerate(state.resources):
        attributes = resource.attributes
        needed = required.get(resource.type)
        if needed and not attributes.keys() >= needed:
            missing = needed - attributes.keys()
            raise StateError(
                f"state {where} is damaged: resources[{index}] ({resource.address}) has no attribute "
                + ", ".join(f"'{m}'" for m in sorted(missing))
            )
        if resource.type == "link" and not (isinstance(attributes["source"], str) and isinstance(attributes["target"], str)):
            raise StateError(f"state {where} is damaged: resources[{index}] ({resource.address}): source and target must be names")
