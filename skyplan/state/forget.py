"""`state rm`: forget resources without destroying them (their files and keys stay)."""

from __future__ import annotations

from skyplan.errors import StateError
from skyplan.state.model import State


def parse_address(text: str) -> str:
    kind, dot, name = text.partition(".")
    if kind not in ("cluster", "link") or not dot or not name:
        raise StateError(f"'{text}' is not a resource address; write cluster.NAME or link.NAME")
    return text


def forget(state: State, addresses: list[str]) -> State:
    """`state` without `addresses`; refuses to leave a link whose cluster was forgotten."""
    resources = state.by_address()
    for address in addresses:
        if address not in resources:
            raise StateError(f"no resource at address {address} in the state")
    gone = set(addresses)
    for address, resource in sorted(resources.items()):
        if resource.type != "link" or address in gone:
            continue
        for end in (resource.attributes["source"], resource.attributes["target"]):
            if f"cluster.{end}" in gone:
                raise StateError(f"{address} joins cluster.{end}; forget it too (state rm {address}) or keep the cluster")
    return state.with_resources({a: r for a, r in resources.items() if a not in gone}, serial=state.serial + 1)
