"""From a workspace to a plan: moves, targeting, readings of what exists, planned values.

`make_plan` is the one way both CLIs plan; skyplan/operations.py calls it for every command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from skyplan.config.diagnostics import Diagnostic
from skyplan.plan.model import DesiredResource, Plan
from skyplan.sdk import Address, Provider, ReadRequest, Reading, ResourceView
from skyplan.state.model import Owner, State
from skyplan.workspace import Workspace


def readable(state: State | None, provider_cls: type[Provider]) -> list[ResourceView]:
    """Resources whose real form can be checked: complete (every value the provider computes is
    recorded), and not left half-done by a crash."""
    if state is None:
        return []
    computed = provider_cls.computed_attributes
    cluster_needs = frozenset(computed.get("cluster", ()))
    link_needs = frozenset(computed.get("link", ()))
    clusters: dict[str, ResourceView] = {}
    links = []
    for r in state.resources:
        if r.pending == "create":
            continue
        if r.type == "link":
            if link_needs <= r.computed.keys():
                links.append(r)
        elif cluster_needs <= r.computed.keys():
            clusters[r.name] = ResourceView("cluster", r.name, r.attributes, r.computed)
    # A link can be checked only when both its ends can.
    return [*clusters.values()] + [
        ResourceView("link", r.name, r.attributes, r.computed)
        for r in links
        if (ends := r.ends).source in clusters and ends.target in clusters
    ]


def refresh(ws: Workspace, prior: State | None, previous: dict[str, str] | None = None) -> tuple[dict[str, Reading], list[str]]:
    """Readings of `prior` (moves already made in it), and the provider's warnings; `previous`
    names where moved files may still be.

    An error the provider reports (a file it cannot read) stops the plan: ProviderError."""
    views = readable(prior, type(ws.provider))
    if not views:
        return {}, []
    previous_names = {new: Address.parse(old).name for new, old in (previous or {}).items()}
    assert prior is not None
    pending = {r.address: r.pending for r in prior.resources if r.pending is not None}
    # A state as it was read (no move made in it, none left unfinished) is a world a refresh
    # may have seen before: the provider gets its memo of it.
    memo = ws.refresh_memo(prior) if not previous_names else None
    response = ws.provider.read(ReadRequest(resources=views, previous_names=previous_names, pending=pending, memo=memo))
    raise_errors(response.diagnostics)
    return response.readings, [f"Warning: {d.message}" for d in response.diagnostics if d.severity == "warning"]


def raise_errors(diagnostics: list[Diagnostic]) -> None:
    """ProviderError with the first error a provider reported, if it reported one.

    The first only, as before diagnostics: the plan stops there, and a problem a provider meets
    through several files (a linked output folder) would otherwise be told once per file.
    """
    from skyplan.config.diagnostics import errors_in
    from skyplan.errors import ProviderError

    errors = errors_in(diagnostics)
    if errors:
        raise ProviderError(diagnostics=errors[:1])


def planned_values(
    provider: Provider, desired: dict[str, DesiredResource], prior: State | None, scope: set[str] | None, owner: Owner
) -> dict[str, dict]:
    """The computed values the provider knows at plan time, asked of the world after this plan:
    desired resources in scope, and recorded ones that stay (out of scope, or another owner's)."""
    from skyplan.sdk import PlanRequest

    if type(provider).plan is Provider.plan:
        return {}  # a provider that plans nothing: every computed value is known after apply
    kinds = set(type(provider).computed_attributes)
    if scope is not None and not any(address.split(".", 1)[0] in kinds for address in scope):
        return {}  # nothing in scope has computed values (skyctl's one link): nothing to ask
    recorded = prior.by_address() if prior else {}
    views = []
    for address, r in recorded.items():
        in_scope = scope is None or address in scope
        if in_scope and (address in desired or r.managed_by == owner):
            continue  # replaced by its desired form below, or deleted by this plan
        views.append(ResourceView(r.type, r.name, r.attributes, r.computed))
    for address, want in desired.items():
        if scope is not None and address not in scope:
            continue
        have = recorded.get(address)
        views.append(ResourceView(want.type, want.name, want.attributes, have.computed if have else {}))
    response = provider.plan(PlanRequest(resources=views))
    raise_errors(response.diagnostics)
    return response.planned


def make_plan(
    ws: Workspace,
    prior: State | None,
    *,
    desired: dict[str, DesiredResource] | Callable[[], dict[str, DesiredResource]],
    owner: Owner = "file",
    mode: str = "normal",
    scope: Iterable[str] | None = None,
    do_refresh: bool = True,
    targets: list[str] | None = None,
    excludes: list[str] | None = None,
    replace: list[str] | None = None,
    recall: bool = False,
) -> Plan:
    """The plan of `desired` (or of what that function returns, made only when it is needed)
    against `prior`. With `recall` (a whole normal plan, shown as text), a plan of the same text
    and state whose refresh finds nothing again is answered by the record of the last one that
    found no changes (plan/unchanged.py): a plan with no changes at all."""
    from skyplan.plan.moves import apply_moves
    from skyplan.plan.planner import plan
    from skyplan.plan.targeting import TARGETING_NOTE, resolve_scope

    replace = sorted(set(replace or []))
    moves = configured_moves(ws) if owner == "file" and mode == "normal" else []
    moved, previous = apply_moves(prior, moves)
    unchanged = None
    recall = recall and do_refresh and mode == "normal" and owner == "file" and scope is None and not replace and not targets and not excludes
    if recall:
        # Nothing to resolve (no --target, no --replace): the refresh comes first, and a plan
        # whose inputs and findings are those of the last plan with no changes is that plan.
        actual, warnings = refresh(ws, moved, previous)
        unchanged = ws.no_changes_record(prior) if moved is prior and not actual and not warnings else None
        if unchanged is not None and unchanged.holds():
            from skyplan.plan.model import PriorState

            assert prior is not None
            return Plan.model_construct(mode=mode, prior_state=PriorState(lineage=prior.lineage, serial=prior.serial))
    if callable(desired):
        desired = desired()
    check_replace(desired, moved, replace, mode)
    targeted = resolve_scope(desired, moved, targets or [], excludes or [])
    if targeted is not None:
        scope = targeted if scope is None else set(scope) & targeted
    scope = set(scope) if scope is not None else None
    if not recall:
        actual, warnings = refresh(ws, moved, previous) if do_refresh else ({}, [])
    result = plan(
        desired,
        prior,
        actual,
        owner=owner,
        scope=scope,
        mode=mode,
        computed=type(ws.provider).computed_attributes,
        replace_on_change=type(ws.provider).replace_on_change,
        replace_on_presence=type(ws.provider).replace_on_presence,
        planned=planned_values(ws.provider, desired, moved, scope, owner) if mode == "normal" else {},
        replace=replace,
        moves=moves,
    )
    if targeted is not None:
        chosen = sorted(targets or []) + [f"!{e}" for e in sorted(excludes or [])]
        result = result.model_copy(update={"notes": [TARGETING_NOTE, *result.notes], "targets": chosen})
    if warnings:
        result = result.model_copy(update={"notes": [*result.notes, *sorted(warnings)]})
    if unchanged is not None and not result.has_changes and not result.drift and not result.notes:
        unchanged.keep()
    return result


def configured_moves(ws: Workspace) -> list[tuple[str, str]]:
    """The `moved` entries of the configuration, as (from, to) addresses."""
    if ws.loaded is None or ws.loaded.partial:
        return []
    return [(entry.from_, entry.to) for entry in ws.loaded.config.moved]


def check_replace(desired: dict[str, DesiredResource], prior: State | None, replace: list[str], mode: str) -> None:
    """Refuse --replace addresses that are malformed or name nothing, and --replace in a destroy."""
    from skyplan.config.diagnostics import Diagnostic
    from skyplan.errors import PlanError
    from skyplan.state.model import address_problem

    if not replace:
        return
    if mode != "normal":
        # As Terraform: a destroy has no update or no-op that a replace could take the place of.
        raise PlanError("--replace is allowed only in a normal plan: a destroy removes the resources anyway")
    recorded = prior.by_address() if prior else {}
    problems = []
    for address in replace:
        problem = address_problem(address)
        if problem:
            problems.append(f"--replace {address}: {problem}")
        elif address not in desired and address not in recorded:
            problems.append(f"--replace {address}: no such resource in the configuration or the state")
    if problems:
        raise PlanError(diagnostics=[Diagnostic(problem) for problem in problems])


def check_targets(ws: Workspace, targets: list[str], excludes: list[str], replace: list[str] | None = None) -> None:
    """Refuse unknown --target/--exclude/--replace addresses of a normal plan before the lock is
    taken (and written)."""
    if targets or excludes or replace:
        from skyplan.plan.moves import apply_moves
        from skyplan.plan.targeting import resolve_scope

        desired = ws.desired()
        prior, _ = apply_moves(ws.read_state(), configured_moves(ws))
        check_replace(desired, prior, sorted(set(replace or [])), "normal")
        resolve_scope(desired, prior, targets, excludes)
