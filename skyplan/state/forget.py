"""`state rm`: forget resources without destroying them (their files and keys stay)."""

from __future__ import annotations

from skyplan.config.diagnostics import Diagnostic
from skyplan.errors import StateError
from skyplan.state.model import State, address_problem


def parse_address(text: str) -> str:
    problem = address_problem(text)
    if problem:
        raise StateError(problem)
    return text


def forget(state: State, addresses: list[str]) -> State:
    """`state` without `addresses`; refuses to leave a link whose cluster was forgotten."""
    resources = state.by_address()
    problems = [f"no resource at address {address} in the state" for address in addresses if address not in resources]
    gone = set(addresses)
    for address, resource in sorted(resources.items()):
        if resource.type != "link" or address in gone:
            continue
        for end in resource.ends:
            if f"cluster.{end}" in gone:
                problems.append(f"{address} joins cluster.{end}; forget it too (state rm {address}) or keep the cluster")
    if problems:
        raise StateError(diagnostics=[Diagnostic(problem) for problem in problems])
    return state.with_resources({a: r for a, r in resources.items() if a not in gone}, serial=state.serial + 1)
