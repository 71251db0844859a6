"""The apply engine: runs a plan through the provider and records every outcome durably.

Crash safety comes from write-ahead intent. Before the provider acts, the state marks every
resource it is about to touch as `pending` (as Pulumi records pending operations). Results are
written as they arrive, at most one state write per checkpoint interval (which grows with the
time a write takes, so that a large fleet's state is not being rewritten most of the time), and a
last write at the end. A run killed at any point leaves either the old state or a state whose pending marks
tell the next plan exactly what to redo; providers act idempotently, so redoing converges.
"""

from __future__ import annotations

import time
import uuid
from functools import lru_cache
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter

from skyplan import collector
from skyplan.construct import whole
from skyplan.plan.model import Action, Plan, ResourceChange, count_actions
from skyplan.plan.moves import apply_moves
from skyplan.sdk import Address, ApplyRequest, Change, Provider, ResourceResult, ResourceView
from skyplan.state.model import ResourceState, ResourceStatus, RunInfo, State, now_iso
from skyplan.state.store import LockInfo, StateStore

CHECKPOINT_SECONDS = 1.0
# Every field written out, in order (construct.whole): two records per resource, 220,000 in a
# large fleet's first apply.
_whole_resource = whole(ResourceState)


@dataclass
class ApplyOutcome:
    state: State
    results: list[ResourceResult] = field(default_factory=list)

    @property
    def failed(self) -> list[ResourceResult]:
        return [r for r in self.results if not r.ok]

    def counts(self, plan: Plan) -> tuple[int, int, int]:
        """Resources added, changed and destroyed, counting only what succeeded."""
        ok = {r.address for r in self.results if r.ok}
        done = count_actions([c for c in plan.actionable if c.address in ok])
        return done.add, done.change, done.destroy


def dependency_order(changes: list[ResourceChange]) -> list[ResourceChange]:
    """Deletes first (links before the clusters they join), then clusters, then links."""
    # Each group by address: a plan's changes come sorted by address, which sorting keeps in one
    # pass; no key tuple is made and compared per change.
    deleted_links: list[ResourceChange] = []
    deleted_clusters: list[ResourceChange] = []
    clusters: list[ResourceChange] = []
    links: list[ResourceChange] = []
    for c in changes:
        if c.action is Action.DELETE:
            (deleted_links if c.type == "link" else deleted_clusters).append(c)
        else:
            (clusters if c.type == "cluster" else links).append(c)
    ordered: list[ResourceChange] = []
    for group in (deleted_links, deleted_clusters, clusters, links):
        group.sort(key=_address)
        ordered += group
    return ordered


_address = attrgetter("address")


def apply_plan(
    plan: Plan,
    prior: State | None,
    store: StateStore,
    provider: Provider,
    *,
    lock: LockInfo | None = None,
    on_result: Callable[[ResourceChange, ResourceResult], None] | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> ApplyOutcome:
    """Apply `plan`; always return the resulting state, also when resources failed."""
    # The records, views and results an apply makes hold no cycles and live until it ends (or
    # are freed by reference counting): a collection meanwhile only walks them again (one of
    # 50-70 ms in a full mesh's apply, more in a larger fleet's). Cycles made meanwhile (an
    # exception's traceback) are collected after it, as the collector was before. Only in a
    # console-script process: a program that embeds skyplan keeps its collector.
    with collector.paused_in_a_command():
        return _apply_plan(plan, prior, store, provider, lock, on_result, checkpoint_seconds)


def _apply_plan(
    plan: Plan,
    prior: State | None,
    store: StateStore,
    provider: Provider,
    lock: LockInfo | None,
    on_result: Callable[[ResourceChange, ResourceResult], None] | None,
    checkpoint_seconds: float,
) -> ApplyOutcome:
    changes = dependency_order(plan.actionable)
    if not changes:
        return ApplyOutcome(prior or State.new())
    state = prior or State.new()
    started = now_iso()
    run = RunInfo(
        id=lock.id if lock else str(uuid.uuid4()),
        # The lock names the command (`skyctl create link`), which tells a user what was cut short.
        operation=lock.operation if lock else ("destroy" if plan.mode == "destroy" else "apply"),
        who=lock.who if lock else "",
        started=started,
    )

    # Moves are made in the state with the intent: the resource is recorded under its new
    # address at once, marked with the name its files still have until the provider moves them.
    moves = [(c.previous_address, c.address) for c in changes if c.previous_address and c.previous_address != c.address]
    original = state.by_address()
    state, _ = apply_moves(state, moves)
    resources = state.by_address()
    # What the provider writes is in its current schema; the state says so with each resource.
    version = type(provider).schema_version
    for change in changes:
        resources[change.address] = _intent(change, resources.get(change.address), started, version)
    state = state.with_resources(resources, serial=state.serial + 1, interrupted=run)
    # Every later state holds these addresses, less the deleted ones (results replace entries or
    # remove them, never add one): sorted once, not for each write of 110,000 resources.
    order = [f"{r.type}.{r.name}" for r in state.resources]
    interval = _Interval(checkpoint_seconds)
    interval.time(store.write, state)

    provider_changes = [_provider_change(c, resources.get(c.address), original) for c in changes]
    request = ApplyRequest(changes=provider_changes, world=_world_after(provider_changes, resources))
    by_address = {c.address: c for c in changes}
    results: list[ResourceResult] = []
    reported: set[str] = set()

    def take(change: ResourceChange, result: ResourceResult) -> None:
        address = change.address
        reported.add(address)
        results.append(result)
        entry = _recorded(change, resources.get(address), result, _now())
        if entry is None:
            resources.pop(address, None)
        else:
            resources[address] = entry
        if on_result is not None:
            on_result(change, result)

    unreported = "the provider reported no result"
    try:
        for result in provider.apply(request):
            change = by_address.get(result.address)
            if change is None or change.address in reported:
                continue  # not asked for, or already answered: the first answer stands
            take(change, result)
            # A result that comes an interval after the last write is written at once: while a
            # slow provider works on the next change, what it finished is already on disk.
            if time.monotonic() - interval.last_write >= interval.seconds:
                state = _snapshot(state, resources, order, serial=state.serial + 1)
                interval.time(store.write, state)
    except KeyboardInterrupt:
        # Keep what finished; the rest stays pending for the next run to redo.
        store.write(_snapshot(state, resources, order, serial=state.serial + 1))
        raise
    except Exception as exc:  # a provider bug must not lose the results it already gave
        unreported = f"provider error: {type(exc).__name__}: {exc}"
    for change in changes:
        if change.address not in reported:
            take(change, ResourceResult.failed(change.address, unreported))
    state = _snapshot(state, resources, order, serial=state.serial + 1, interrupted=None)
    store.write(state)
    return ApplyOutcome(state, results)


def _snapshot(state: State, resources: dict[str, ResourceState], order: list[str], **changes: object) -> State:
    """`state.with_resources(resources, **changes)`, its addresses in `order` (sorted already)."""
    return state.model_copy(update={"resources": [resources[address] for address in order if address in resources], **changes})


class _Interval:
    """The time between checkpoints: `checkpoint_seconds`, or longer where writing the state takes
    long (a large fleet's state, a distant database), so that writing the state takes at most a
    fifth of an apply's time, not most of it."""

    SHARE = 4  # an interval at least this many times the last write

    def __init__(self, seconds: float) -> None:
        self.least = self.seconds = seconds
        self.last_write = time.monotonic()

    def time(self, write: Callable[[State], None], state: State) -> None:
        started = time.monotonic()
        write(state)
        self.last_write = time.monotonic()
        if self.least > 0:  # 0: after every result, however long a write takes
            self.seconds = max(self.least, self.SHARE * (self.last_write - started))


_clock: list = [None, ""]  # the second it is and its text: a large apply records thousands a second


def _now() -> str:
    second = int(time.time())
    if second != _clock[0]:
        _clock[:] = [second, now_iso()]
    return _clock[1]


@lru_cache(maxsize=4)
def _initial_status(now: str) -> ResourceStatus:
    # Status objects are immutable: resources changed in the same second share one.
    return ResourceStatus(phase="INIT", since=now)


def _intent(change: ResourceChange, have: ResourceState | None, now: str, version: int) -> ResourceState:
    if have is None:
        return _whole_resource(
            {
                "type": change.type,
                "name": change.name,
                "managed_by": change.managed_by,
                "attributes": change.after or {},
                "computed": {},
                "status": _initial_status(now),
                "created": now,
                "pending": "create",
                "moved_from": None,
                "schema_version": version,
            }
        )
    update: dict = {"pending": _PROVIDER_ACTION[change.action], "schema_version": version}
    if change.previous_address and change.previous_address != change.address and have.moved_from is None:
        update["moved_from"] = Address.parse(change.previous_address).name
    return have.model_copy(update=update)


def _recorded(change: ResourceChange, have: ResourceState | None, result: ResourceResult, now: str) -> ResourceState | None:
    """The state entry after `result`; None when a delete succeeded."""
    assert have is not None  # the intent checkpoint recorded every change
    if not result.ok:
        status = ResourceStatus(phase="FAILED", reason=result.error, since=now)
        return have.model_copy(update={"status": status, "pending": None, "computed": result.computed or have.computed})
    action = change.action
    if action is Action.DELETE:
        return None
    after = change.after or {}
    attributes = have.attributes
    return _whole_resource(
        {
            "type": change.type,
            "name": change.name,
            "managed_by": change.managed_by,
            # A create's intent holds the plan's dict already: shared, as neither is ever changed.
            "attributes": attributes if attributes is after else dict(after),
            "computed": result.computed or have.computed,
            "status": _initial_status(now),
            "created": now if action is Action.CREATE or action is Action.REPLACE or have.pending == "create" else have.created,
            "pending": None,
            "moved_from": None,
            "schema_version": have.schema_version,
        }
    )


# ResourceChange.provider_action, looked up rather than worked out for each of 100,000 changes.
_PROVIDER_ACTION = {action: "update" if action is Action.NOOP else action.provider_action for action in Action}

# A view of every resource is made per apply: tuple.__new__ with all four fields skips the
# named tuple's argument handling.
_new_view = tuple.__new__


def _view(r: ResourceState) -> ResourceView:
    return _new_view(ResourceView, (r.type, r.name, r.attributes, r.computed))


def _provider_change(change: ResourceChange, have: ResourceState | None, original: dict[str, ResourceState]) -> Change:
    action = change.action
    before = _view(have) if have is not None and action is not Action.CREATE else None
    if before is not None and have is not None and have.moved_from is not None:
        # A move: the provider sees the resource as it was, under the name its files have.
        was = original.get(f"{change.type}.{have.moved_from}")
        before = ResourceView(change.type, have.moved_from, (was or have).attributes, (was or have).computed)
    after = None
    if change.after is not None:
        after = _new_view(ResourceView, (change.type, change.name, dict(change.after), _computed(change, have)))
    return _new_change(change.address, _PROVIDER_ACTION[action], before, after)


def _new_change(address: str, action: str, before: ResourceView | None, after: ResourceView | None) -> Change:
    # The frozen dataclass's __init__ sets each field through object.__setattr__, once per
    # change of every apply: the same instance, its fields in one dict.
    change = _new_object(Change)
    _setattr(change, "__dict__", {"address": address, "action": action, "before": before, "after": after})
    return change


_new_object = object.__new__
_setattr = object.__setattr__


def _computed(change: ResourceChange, have: ResourceState | None) -> dict:
    # What the plan promised (an address) wins over what was recorded: apply does what it showed.
    recorded = have.computed if have else {}
    return {**recorded, **change.planned} if change.planned else recorded


def _world_after(changes: list[Change], recorded: dict[str, ResourceState]) -> dict[str, ResourceView]:
    # Each resource a change leaves is as the change shows it to the provider (the same view).
    world = {address: _view(r) for address, r in recorded.items() if r.pending != "create"}
    for change in changes:
        if change.after is None:
            world.pop(change.address, None)
        else:
            world[change.address] = change.after
    return world
