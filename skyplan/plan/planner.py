"""The planner: a pure function from desired, recorded and actual state to a Plan."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from skyplan.config.diagnostics import Diagnostic
from skyplan.construct import trusted
from skyplan.errors import PlanError
from skyplan.plan.diff import attribute_changes, nested_changes
from skyplan.plan.model import Action, AttributeChange, DesiredResource, Drift, Plan, PriorState, ResourceChange
from skyplan.plan.moves import Move, apply_moves
from skyplan.sdk.resources import link_ends
from skyplan.state.model import Owner, ResourceState, State

# A link is the peering of its two ends: other ends make another link, so they force a replace.
_LINK_ENDS = frozenset({"source", "target"})
_NOTE_LIMIT = 5

_new_change = trusted(ResourceChange)


def plan(
    desired: Mapping[str, DesiredResource],
    prior: State | None,
    actual: Mapping[str, Any] | None = None,
    *,
    owner: Owner = "file",
    scope: Iterable[str] | None = None,
    mode: str = "normal",
    computed: Mapping[str, tuple[str, ...]] | None = None,
    planned: Mapping[str, Mapping[str, Any]] | None = None,
    replace: Iterable[str] = (),
    moves: Sequence[Move] = (),
    replace_on_change: Mapping[str, Mapping[str, str]] | None = None,
    replace_on_presence: Mapping[str, Mapping[str, str]] | None = None,
) -> Plan:
    """Diff `desired` against `prior` (as corrected by `actual` readings) into a Plan.

    `actual` maps addresses to provider readings that differ from what the state records.
    `scope`, if given, limits the plan to those addresses (skyctl, --target).
    `planned` holds computed values the provider already knows (addresses), `replace` the
    addresses to replace on request (--replace), `moves` the renames (`moved` entries) to make
    in the state first; readings and planned values use the new addresses. `replace_on_change`
    names, per resource type, the arguments a provider cannot change in place (and why);
    `replace_on_presence` those that may change in place but not appear or go away.
    Resources that another owner manages are never destroyed; they are noted.
    """
    computed = computed or {}
    replace_on_change = replace_on_change or {}
    replace_on_presence = replace_on_presence or {}
    actual = actual or {}
    planned = planned or {}
    forced = set(replace)
    prior, previous = apply_moves(prior, moves)
    recorded = prior.by_address() if prior else {}
    in_scope = set(scope) if scope is not None else None
    conflicts = [r.reason for a, r in sorted(actual.items()) if r.conflict and a not in forced]
    if conflicts:
        raise PlanError(diagnostics=[Diagnostic(reason) for reason in conflicts])

    changes: list[ResourceChange] = []
    left_alone: list[str] = []
    append = changes.append
    no_values: dict[str, Any] = {}
    for address in sorted(set(desired) | set(recorded)):
        if in_scope is not None and address not in in_scope:
            continue
        want, have = desired.get(address), recorded.get(address)
        if (
            want is not None
            and have is not None
            and address not in actual
            and address not in forced
            and address not in previous
            and (noop := _unchanged(address, want, have, planned.get(address, no_values))) is not None
        ):
            # The common case of a large plan (most resources of a no-change plan of 100,000
            # links): what _change would conclude, without its steps.
            append(noop)
            continue
        if want is not None and have is None and address not in actual:
            # The other common case, every resource of a first apply: a create (--replace
            # changes nothing for a resource not made yet).
            append(_created(address, want, computed, planned.get(address, no_values)))
            continue
        if want is None and have is not None and have.managed_by != owner:
            if not _finishes(have, mode):
                left_alone.append(address)
                continue
            want = None if have.pending == "delete" else as_recorded(have)
        kind = address.split(".", 1)[0]
        change = _change(
            address, want, have, actual.get(address), computed, planned.get(address, no_values), address in forced, mode,
            replace_on_change.get(kind, no_values),
            replace_on_presence.get(kind, no_values),
        )
        if want is None and have is not None and have.managed_by != owner:
            # Finishing another owner's own delete: no configuration went missing.
            change = change.model_copy(update={"action_reason": None})
        if have is not None and address in previous:
            change = change.model_copy(update={"previous_address": previous[address]})
        append(change)

    notes = []
    held = _held_clusters(changes, recorded)
    if held and mode == "destroy":
        # Destroy takes what it can: a cluster that skyctl's links still join stays, said so.
        changes = [c for c in changes if c.address not in held]
        for cluster, links in sorted(held.items()):
            notes.append(f"{cluster} is kept: {', '.join(links)} (not managed by this file) still join{'s' if len(links) == 1 else ''} it.")
    elif held:
        raise PlanError(diagnostics=[Diagnostic(m) for c, links in sorted(held.items()) for m in _holding_messages(c, links, recorded)])
    # A resource whose interrupted delete is being finished was changed by that delete, not
    # outside skyplan: what it left behind is not drift.
    finishing_delete = {c.address for c in changes if c.action is Action.DELETE and recorded[c.address].pending == "delete"}
    drift = [
        _drift(recorded[address], reading)
        for address, reading in sorted(actual.items())
        if address in recorded
        and address not in left_alone
        and address not in finishing_delete
        and (in_scope is None or address in in_scope)
    ]
    if prior is not None and prior.interrupted is not None:
        run = prior.interrupted
        notes.append(
            f"An earlier {run.operation} ({run.who}, started {run.started}) was interrupted; "
            "this plan finishes what it left undone."
        )
    if left_alone:
        shown = ", ".join(left_alone[:_NOTE_LIMIT]) + (f" and {len(left_alone) - _NOTE_LIMIT} more" if len(left_alone) > _NOTE_LIMIT else "")
        other = "skyctl" if owner == "file" else "the configuration file"
        notes.append(f"{len(left_alone)} resource{'s' if len(left_alone) != 1 else ''} managed by {other} left alone: {shown}.")
    return Plan.model_construct(
        mode=mode,
        prior_state=PriorState(lineage=prior.lineage, serial=prior.serial) if prior else None,
        changes=changes,
        drift=drift,
        notes=notes,
    )


def _finishes(have: ResourceState, mode: str) -> bool:
    """Whether this plan finishes the interrupted work on a resource another owner manages.

    Pending marks are the engine's, not an owner's: whichever run comes next finishes them, so
    a killed skyctl create is not stranded half-made. A destroy finishes only deletes: it never
    creates what it does not manage.
    """
    return have.pending is not None and (mode != "destroy" or have.pending == "delete")


def as_recorded(have: ResourceState) -> DesiredResource:
    """A resource as its owner last asked for it: what finishing its pending work aims at."""
    return DesiredResource(have.type, have.name, dict(have.attributes), have.managed_by)


def _change(
    address: str,
    want: DesiredResource | None,
    have: ResourceState | None,
    reading,
    computed,
    known: Mapping[str, Any],
    forced: bool,
    mode: str = "normal",
    fixed: Mapping[str, str] | None = None,
    present: Mapping[str, str] | None = None,
) -> ResourceChange:
    kind, name = address.split(".", 1)
    known = dict(known) if want is not None else {}
    unknown = [key for key in computed.get(kind, ()) if key not in known]
    if have is None:
        assert want is not None
        return _make(address, kind, name, Action.CREATE, want.managed_by, None, want.attributes, unknown, planned=known)
    before = {**have.attributes, **have.computed}
    if want is None:
        reason = "an interrupted apply did not finish deleting it" if have.pending == "delete" else None
        return _make(
            address, kind, name, Action.DELETE, have.managed_by, before, None, [], reason=reason,
            token="delete_because_no_resource_config" if mode == "normal" else None,
        )
    if have.pending == "create":
        return _make(
            address, kind, name, Action.CREATE, want.managed_by, None, want.attributes, unknown, planned=known,
            reason="an interrupted apply did not finish creating it",
        )
    if have.status.phase == "FAILED" and not set(unknown) <= set(have.computed):
        # It failed before the provider computed what it must (a key): only a create can finish it.
        return _make(
            address, kind, name, Action.CREATE, want.managed_by, None, want.attributes, unknown, planned=known,
            reason=f"creating it failed: {have.status.reason}",
        )

    if (
        not forced
        and reading is None
        and have.pending is None
        and have.status.phase != "FAILED"
        and have.managed_by == want.managed_by
        and have.attributes == want.attributes  # as attribute_changes compares them
        and all(have.computed.get(key) == value for key, value in known.items())
    ):
        # Nothing to do, the common case of a large plan: what the steps below would conclude.
        return _make(
            address, kind, name, Action.NOOP, want.managed_by, before, want.attributes, [], planned=known,
            known_computed=have.computed,
        )
    force_new = _LINK_ENDS if kind == "link" and _ends(have.attributes) != _ends(want.attributes) else frozenset()
    # Arguments the provider cannot change in place; absent and None are the same value.
    fixed_changed = sorted(key for key in fixed or () if have.attributes.get(key) != want.attributes.get(key))
    # Arguments that may change value in place but not come or go (None counts as absent).
    fixed_changed += sorted(
        key
        for key in present or ()
        if key not in fixed_changed and (have.attributes.get(key) is None) != (want.attributes.get(key) is None)
    )
    if fixed_changed:
        force_new = force_new | frozenset(fixed_changed)
    attribute_diff = attribute_changes(have.attributes, want.attributes, force_new)
    # A computed value that the plan already knows to change (an address) is a change like any other.
    known_changes = {key: value for key, value in known.items() if have.computed.get(key) != value}
    if known_changes:
        attribute_diff = [_merged(item, have.computed, known_changes) for item in attribute_diff]
        attribute_diff += [
            AttributeChange(path=key, before=have.computed.get(key), after=value) for key, value in known_changes.items()
        ]
    attribute_diff.sort(key=lambda item: item.path)
    if have.managed_by != want.managed_by:
        attribute_diff.append(_owner_change(have.managed_by, want.managed_by))

    replace_reason = token = None
    if forced:
        replace_reason, token = "as requested with --replace", "replace_by_request"
    elif fixed_changed:
        replace_reason, token = {**(present or {}), **(fixed or {})}[fixed_changed[0]], "replace_because_cannot_update"
    elif force_new:
        replace_reason, token = "its clusters changed", "replace_because_cannot_update"
    elif reading is not None and reading.replace:
        replace_reason, token = reading.reason, "replace_because_cannot_update"
    elif have.pending == "replace" and reading is None:
        replace_reason, token = "an interrupted apply did not finish replacing it", "replace_because_tainted"
    if replace_reason is not None:
        return _make(
            address, kind, name, Action.REPLACE, want.managed_by, before, want.attributes, unknown,
            attribute_diff, reason=replace_reason, planned=known, token=token,
        )

    reason = None
    if reading is not None:
        reason = f"changed outside skyplan: {reading.reason}" if reading.reason else "changed outside skyplan"
    elif have.pending is not None:
        reason = f"an interrupted apply did not finish its {have.pending}"
    elif have.status.phase == "FAILED":
        reason = f"the last apply failed: {have.status.reason}"
    # An update or no-op keeps what the provider computed (key, address): known at plan time.
    action = Action.UPDATE if attribute_diff or reason else Action.NOOP
    return _make(
        address, kind, name, action, want.managed_by, before, want.attributes, [], attribute_diff,
        reason=reason, planned=known, known_computed=have.computed,
    )


def _merged(item: AttributeChange, computed: Mapping[str, Any], known_changes: dict[str, Any]) -> AttributeChange:
    """An argument that is also a computed value (a pinned address, an external peer's key)
    changes once: from the value it had to the one planned. Takes it out of `known_changes`."""
    if item.path not in known_changes:
        return item
    before = computed.get(item.path, item.before)
    return AttributeChange(path=item.path, before=before, after=known_changes.pop(item.path), forces_replacement=item.forces_replacement)


def _make(
    address, kind, name, action, owner, before, after, unknown, attribute_diff=(), reason=None,
    planned=None, token=None, known_computed=None,
) -> ResourceChange:
    return _new_change(
        address=address,
        type=kind,
        name=name,
        action=action,
        managed_by=owner,
        before=before,
        after=after,
        known_computed=known_computed or {},
        after_unknown=unknown,
        planned=planned or {},
        attribute_changes=list(attribute_diff),
        reason=reason,
        action_reason=token,
        previous_address=None,
    )


def _unchanged(address: str, want: DesiredResource, have: ResourceState, known: Mapping[str, Any]) -> ResourceChange | None:
    """The no-op of a resource recorded exactly as desired, with no pending work, no failure
    and the planned values it has; None for any other (_change works it out). The caller has
    made sure that no reading, --replace or move concerns it."""
    if have.pending is not None or have.managed_by != want.managed_by or have.status.phase == "FAILED" or have.attributes != want.attributes:
        return None
    computed = have.computed
    if not all(computed.get(key) == value for key, value in known.items()):
        return None
    kind, name = address.split(".", 1)
    # What _change's no-op builds (through _make), field for field in ResourceChange's order.
    return _new_change(
        address=address,
        type=kind,
        name=name,
        action=Action.NOOP,
        managed_by=want.managed_by,
        before={**have.attributes, **computed},
        after=want.attributes,
        known_computed=computed or {},
        after_unknown=[],
        planned=dict(known),
        attribute_changes=[],
        reason=None,
        action_reason=None,
        previous_address=None,
    )


def _created(address: str, want: DesiredResource, computed: Mapping[str, tuple[str, ...]], known: Mapping[str, Any]) -> ResourceChange:
    """The create of a resource the state does not hold: what _change builds for it (through
    _make), field for field in ResourceChange's order. The caller has made sure that no reading
    concerns it (a resource the state lacks is never a move's)."""
    kind, name = address.split(".", 1)
    return _new_change(
        address=address,
        type=kind,
        name=name,
        action=Action.CREATE,
        managed_by=want.managed_by,
        before=None,
        after=want.attributes,
        known_computed={},
        after_unknown=[key for key in computed.get(kind, ()) if key not in known],
        planned=dict(known),
        attribute_changes=[],
        reason=None,
        action_reason=None,
        previous_address=None,
    )


def _owner_change(before: str, after: str):
    from skyplan.plan.model import AttributeChange

    return AttributeChange(path="managed_by", before=before, after=after)


def _ends(attributes: dict[str, Any]) -> frozenset:
    # Unordered: a link from a to b joins the same clusters as one from b to a.
    return frozenset(link_ends(attributes))


def _drift(have: ResourceState, reading) -> Drift:
    return Drift(
        address=have.address,
        type=have.type,
        name=have.name,
        changes=nested_changes(reading.expected, reading.found),
        reason=reading.reason,
    )


def _held_clusters(changes: list[ResourceChange], recorded: dict[str, ResourceState]) -> dict[str, list[str]]:
    """Clusters this plan deletes that a link staying behind still joins: cluster -> links."""
    deleted = {c.address for c in changes if c.action is Action.DELETE}
    held: dict[str, list[str]] = {}
    if not any(a.startswith("cluster.") for a in deleted):
        return held
    remaining_links: dict[str, dict[str, Any]] = {
        a: r.attributes for a, r in recorded.items() if r.type == "link" and a not in deleted
    }
    for c in changes:
        if c.type == "link" and c.after is not None:
            remaining_links[c.address] = c.after
    for address, attributes in sorted(remaining_links.items()):
        for end in ("source", "target"):
            cluster = f"cluster.{attributes[end]}"
            if cluster in deleted and address not in held.get(cluster, []):
                held.setdefault(cluster, []).append(address)
    return held


def _holding_messages(cluster: str, links: list[str], recorded: dict[str, ResourceState]) -> list[str]:
    """A problem for each link that keeps `cluster` from being destroyed, and how to settle it."""
    problems = []
    for address in links:
        owner = recorded[address].managed_by if address in recorded else "file"
        how = (
            f"delete it first with: skyctl delete link {address.split('.', 1)[1]}"
            if owner == "skyctl"
            else "remove it from the configuration too"
        )
        problems.append(f"{cluster} cannot be destroyed while {address} (managed by {owner}) joins it; {how}")
    return problems
