"""--target and --exclude: which addresses a plan may touch, with what they depend on."""

from __future__ import annotations

from collections.abc import Mapping

from skyplan.config.diagnostics import Diagnostic
from skyplan.errors import PlanError
from skyplan.plan.model import DesiredResource
from skyplan.sdk.resources import link_ends
from skyplan.state.model import State, address_problem

TARGETING_NOTE = (
    "Resource targeting is in effect: this plan covers only the targeted resources and what they "
    "depend on, so it may not be everything the configuration asks for. Targeting is for "
    "exceptional cases; apply without it for routine changes."
)


def resolve_scope(
    desired: Mapping[str, DesiredResource], prior: State | None, targets: list[str], excludes: list[str]
) -> set[str] | None:
    """The addresses in scope, or None for all. A link needs its clusters; a cluster that goes
    takes the links that join it; excluding a cluster excludes the links that join it."""
    if not targets and not excludes:
        return None
    recorded = prior.by_address() if prior else {}
    known = set(desired) | set(recorded)
    problems = []
    for flag, addresses in (("--target", targets), ("--exclude", excludes)):
        for address in addresses:
            problem = address_problem(address)
            if problem:
                problems.append(f"{flag} {address}: {problem}")
            elif address not in known:
                problems.append(f"{flag} {address}: no such resource in the configuration or the state")
    if problems:
        raise PlanError(diagnostics=[Diagnostic(problem) for problem in problems])

    def ends(link: str) -> set[str]:
        attributes = desired[link].attributes if link in desired else recorded[link].attributes
        return {f"cluster.{end}" for end in link_ends(attributes)}

    def joining(cluster: str) -> set[str]:
        return {a for a in known if a.startswith("link.") and cluster in ends(a)}

    if targets:
        scope: set[str] = set()
        for address in targets:
            scope.add(address)
            if address.startswith("link.") and address in desired:
                scope |= ends(address)
            if address.startswith("cluster.") and address not in desired:
                scope |= joining(address)
    else:
        scope = set(known)
    for address in excludes:
        scope.discard(address)
        if address.startswith("cluster."):
            scope -= joining(address)
        elif address not in desired:
            # A link left standing keeps its clusters: their deletions wait with it.
            scope -= {cluster for cluster in ends(address) if cluster not in desired}
    return scope
