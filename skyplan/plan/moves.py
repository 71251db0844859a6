"""Renames without churn: `moved` entries and `state mv` carried out on a recorded state."""

from __future__ import annotations

from collections.abc import Sequence

from skyplan.errors import PlanError
from skyplan.state.model import ResourceState, State

Move = tuple[str, str]  # (from address, to address)


def unfinished_moves(state: State | None) -> dict[str, str]:
    """Resources whose move an interrupted or failed run left unfinished: address -> previous address."""
    if state is None:
        return {}
    found = {r.address: r.moved_from for r in state.resources if r.moved_from is not None}
    if not found:
        return {}
    from skyplan.config.rules import name_problem
    from skyplan.errors import StateError

    for address, name in found.items():
        # Files are looked for under this name: it obeys the rules of a name in links.yaml.
        if name_problem(name):
            raise StateError(f"state is damaged: {address} records moved_from {name!r}, which is not a valid name")
    return {address: f"{address.split('.', 1)[0]}.{name}" for address, name in found.items()}


def apply_moves(state: State | None, moves: Sequence[Move]) -> tuple[State | None, dict[str, str]]:
    """`state` with every move made, and each moved resource's previous address (new -> old).

    A moved resource keeps everything it had (arguments, computed key and address, owner); the
    links that join a moved cluster name it by its new name. A move whose `from` the state does
    not hold is already done (or was never needed) and is skipped, as Terraform does.
    """
    previous = unfinished_moves(state)
    if state is None or not moves:
        return state, previous
    resources = state.by_address()
    renamed: dict[str, str] = {}  # cluster name -> new name
    moved_any = False
    for old, new in moves:
        if old not in resources:
            continue
        if new in resources:
            raise PlanError(
                f"cannot move {old} to {new}: the state holds both; forget one with `skyplan state rm`, "
                "or remove the moved entry"
            )
        moved_any = True
        resource = resources.pop(old)
        new_name = new.split(".", 1)[1]
        resources[new] = resource.model_copy(update={"name": new_name})
        previous[new] = previous.pop(old, old)
        if resource.type == "cluster":
            renamed[resource.name] = new_name
    if not moved_any:
        # Every move made long ago (moved entries are kept, as in Terraform): the state as read,
        # itself, so that the refresh knows it for the world it was (Workspace.refresh_memo).
        return state, previous
    if renamed:
        for address, resource in list(resources.items()):
            if resource.type == "link":
                resources[address] = _follow(resource, renamed)
    return state.with_resources(resources), previous


def _follow(link: ResourceState, renamed: dict[str, str]) -> ResourceState:
    source, target = link.ends
    if source not in renamed and target not in renamed:
        return link
    attributes = {**link.attributes, "source": renamed.get(source, source), "target": renamed.get(target, target)}
    return link.model_copy(update={"attributes": attributes})


def move_plan(state: State | None, source: str, destination: str):
    """`state mv FROM TO` as a plan of exactly that move, for the apply engine to carry out."""
    from skyplan.config.rules import name_problem
    from skyplan.errors import StateError
    from skyplan.plan.model import Action, Plan, PriorState, ResourceChange
    from skyplan.state.model import address_problem

    for address in (source, destination):
        problem = address_problem(address)
        if problem:
            raise StateError(problem)
    kind, name = destination.split(".", 1)
    if source.split(".", 1)[0] != kind:
        raise StateError(f"cannot move {source} to {destination}: a move keeps the resource's type")
    problem = name_problem(name)
    if problem:
        raise StateError(f"invalid {kind} name '{name}': {problem}")
    recorded = state.by_address() if state else {}
    if source not in recorded:
        raise StateError(f"no resource at address {source} in the state")
    if destination in recorded:
        raise StateError(f"cannot move {source} to {destination}: the state already holds {destination}")
    have = recorded[source]
    assert state is not None
    change = ResourceChange(
        address=destination,
        type=have.type,
        name=name,
        action=Action.NOOP,
        managed_by=have.managed_by,
        before={**have.attributes, **have.computed},
        after=dict(have.attributes),
        previous_address=source,
    )
    return Plan(prior_state=PriorState(lineage=state.lineage, serial=state.serial), changes=[change])
