"""Typed resources: the two resource types, their addresses, and a resource as a provider sees it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

ResourceType = Literal["cluster", "link"]
RESOURCE_TYPES: tuple[ResourceType, ...] = ("cluster", "link")

# The name rule of clusters and links: links.yaml, skyctl and the JSON Schema check it, and a
# provider that names resources (import) makes names that pass it.
NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
NAME_RULE = (
    "1 to 63 characters of letters, digits, '-', '_' and '.', "
    "starting and ending with a letter or digit"
)


def address_problem(text: str) -> str | None:
    """Why `text` is not a resource address (cluster.NAME or link.NAME), or None if it is one."""
    kind, dot, name = text.partition(".")
    if kind not in RESOURCE_TYPES or not dot or not name:
        return f"'{text}' is not a resource address; write cluster.NAME or link.NAME"
    return None


class Address(NamedTuple):
    """`cluster.NAME` or `link.NAME`, as a value: `str()` gives the text, `parse` reads it back."""

    type: ResourceType
    name: str

    @classmethod
    def parse(cls, text: str) -> Address:
        problem = address_problem(text)
        if problem:
            raise ValueError(problem)
        kind, _, name = text.partition(".")
        return cls(kind, name)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.type}.{self.name}"


class LinkEnds(NamedTuple):
    """The two clusters a link joins, by name."""

    source: str
    target: str


_new_tuple = tuple.__new__  # builds a LinkEnds without the keyword handling of its __new__: hot


def link_ends(attributes: Mapping[str, Any]) -> LinkEnds:
    """The ends recorded in a link's attributes (the state, a plan, the configuration)."""
    return _new_tuple(LinkEnds, (attributes["source"], attributes["target"]))


class ResourceView(NamedTuple):
    """A resource as a provider sees it: its arguments and what the provider computed before.

    A named tuple: immutable like the other requests, and made tens of thousands of times per
    command on large workspaces, where a frozen dataclass costs several times more to build.
    """

    type: ResourceType
    name: str
    attributes: dict[str, Any]
    computed: dict[str, Any] = {}  # noqa: RUF012 - never mutated: a fresh dict replaces it

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    @property
    def ends(self) -> LinkEnds:
        """A link's two clusters (a cluster has none: KeyError)."""
        attributes = self.attributes  # inlined link_ends: read for every link of every table
        return _new_tuple(LinkEnds, (attributes["source"], attributes["target"]))
