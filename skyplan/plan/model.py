"""The plan model: actions, resource changes, drift, and the plan as a whole."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skyplan import __version__
from skyplan.sdk.resources import ResourceType
from skyplan.state.model import Owner

PLAN_FORMAT_VERSION = "1.0"


class Action(str, Enum):
    """What apply does to one resource; the value is the symbol plans show."""

    CREATE = "+"
    DELETE = "-"
    UPDATE = "~"
    REPLACE = "-/+"
    NOOP = " "

    @property
    def json_actions(self) -> list[str]:
        return {
            Action.CREATE: ["create"],
            Action.DELETE: ["delete"],
            Action.UPDATE: ["update"],
            Action.REPLACE: ["delete", "create"],
            Action.NOOP: ["no-op"],
        }[self]

    @property
    def provider_action(self) -> str:
        return {Action.CREATE: "create", Action.DELETE: "delete", Action.UPDATE: "update", Action.REPLACE: "replace"}[self]


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class AttributeChange(Item):
    path: str
    before: Any = None
    after: Any = None
    forces_replacement: bool = False


@dataclass(frozen=True, slots=True)
class DesiredResource:
    """What the configuration (or a skyctl command) asks for: the planner's input.

    A plain dataclass, unlike the persisted models: a large file makes tens of thousands of
    these on every plan, and they are never stored or read back.
    """

    type: ResourceType
    name: str
    attributes: dict[str, Any]
    managed_by: Owner = "file"

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"


# Terraform's `action_reason` tokens, so that policies written for Terraform plans read ours.
ActionReason = Literal[
    "replace_because_cannot_update",
    "replace_because_tainted",
    "replace_by_request",
    "delete_because_no_resource_config",
    "delete_because_no_move_target",
]


class ResourceChange(Item):
    address: str
    type: ResourceType
    name: str
    action: Action
    managed_by: Owner = "file"
    before: dict[str, Any] | None = None  # attributes and computed values as recorded
    after: dict[str, Any] | None = None  # attributes as they will be
    # Computed values recorded in the state that an update or no-op keeps (a key, an address):
    # known at plan time, shown in the JSON plan's `after`; `planned` below takes precedence.
    known_computed: dict[str, Any] = Field(default_factory=dict)
    after_unknown: list[str] = Field(default_factory=list)  # computed during apply
    # Computed values already known at plan time (a cluster's address), kept apart from `after`
    # because apply records `after` as the resource's arguments.
    planned: dict[str, Any] = Field(default_factory=dict)
    attribute_changes: list[AttributeChange] = Field(default_factory=list)
    reason: str | None = None  # for people; logic never reads it
    action_reason: ActionReason | None = None  # for machines, where Terraform has a token for it
    # Where the resource was before a `moved` entry or `state mv` renamed it.
    previous_address: str | None = None

    @property
    def is_move(self) -> bool:
        return self.previous_address is not None

    @property
    def provider_action(self) -> str:
        # A pure move is an update to the provider: its files follow the new name.
        return "update" if self.action is Action.NOOP else self.action.provider_action


class Drift(Item):
    """A difference between what the state records and what is really there."""

    address: str
    type: ResourceType
    name: str
    changes: list[AttributeChange]
    reason: str = ""


class PriorState(Item):
    lineage: str
    serial: int


class Summary(Item):
    add: int = 0
    change: int = 0
    destroy: int = 0


class Plan(Item):
    format_version: str = PLAN_FORMAT_VERSION
    skyplan_version: str = __version__
    mode: Literal["normal", "destroy"] = "normal"
    prior_state: PriorState | None = None
    changes: list[ResourceChange] = Field(default_factory=list)  # sorted by address, no-ops too
    drift: list[Drift] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)

    @property
    def actionable(self) -> list[ResourceChange]:
        """What apply acts on: every change but the no-ops; a move is one even when nothing else changes."""
        return [c for c in self.changes if c.action is not Action.NOOP or c.previous_address is not None]

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.NOOP or c.previous_address is not None for c in self.changes)

    @property
    def summary(self) -> Summary:
        return count_actions(self.changes)


def count_actions(changes: list[ResourceChange]) -> Summary:
    """Terraform's counting: a replace is one to add and one to destroy."""
    add = change = destroy = 0
    for c in changes:
        if c.action is Action.CREATE:
            add += 1
        elif c.action is Action.UPDATE:
            change += 1
        elif c.action is Action.DELETE:
            destroy += 1
        elif c.action is Action.REPLACE:
            add += 1
            destroy += 1
    return Summary(add=add, change=change, destroy=destroy)
