"""The provider interface and the entry-point registry that finds providers by name.

A provider turns resource changes into real things (files, tunnels). Its surface is small and
request-in, response-out: a settings model, `validate`, `read`, `plan` (optional: values known
before apply), `apply` and `status`.

`apply` takes the whole ordered batch of an apply, like Terraform's ApplyResourceChange handles
create, update and delete in one call: WireGuard keeps every link of a cluster in one file, and
only the whole batch tells which files change, so each is written once per apply.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel

from skyplan.config.diagnostics import Diagnostic
from skyplan.errors import ProviderError

ENTRY_POINT_GROUP = "skyplan.providers"

ResourceType = Literal["cluster", "link"]


@dataclass(frozen=True)
class WorkspacePaths:
    """Where a workspace keeps its files; providers write only below these."""

    root: Path  # the folder of links.yaml
    data: Path  # .skyplan/

    @property
    def keys(self) -> Path:
        return self.data / "keys"

    @classmethod
    def for_config(cls, config_path: Path) -> WorkspacePaths:
        root = config_path.resolve().parent
        return cls(root=root, data=root / ".skyplan")


@dataclass(frozen=True)
class ReadBack:
    """Pydantic validation context for values read back from a state or a saved plan.

    Others can write those (a shared database, a plan file in transit), so they pass the same
    validators as the file, and validators of settings that name a path keep such a value inside
    the workspace unless it is the one the configuration itself gives.
    """

    root: Path  # the workspace
    configured: BaseModel | None  # the provider settings of the configuration, which is trusted

    def as_context(self) -> dict[str, Any]:
        return {READ_BACK: self}


READ_BACK = "skyplan.read_back"


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


@dataclass(frozen=True)
class ValidateRequest:
    clusters: list[ResourceView]  # in file order: index i is clusters[i] of the document
    links: list[ResourceView]


@dataclass(frozen=True)
class ReadRequest:
    resources: list[ResourceView]  # what the state says exists
    # Resources being renamed (a `moved` entry, `state mv`): address -> the name their files may
    # still have, when a run that was moving them was interrupted.
    previous_names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    """What a provider found for one resource, next to what it expected to find.

    `expected` and `found` are comparable dicts (never secrets); the planner diffs them.
    `replace` says the resource can only be put right by replacing it (a lost key).
    `conflict` says it cannot be planned from here at all (a key file that is not the key the
    state records): the plan stops with `reason`, unless the resource is replaced on request.
    """

    address: str
    expected: dict[str, Any]
    found: dict[str, Any]
    replace: bool = False
    reason: str = ""
    conflict: bool = False


@dataclass(frozen=True)
class ReadResponse:
    readings: dict[str, Reading]  # only resources that differ from what was expected


@dataclass(frozen=True)
class PlanRequest:
    """Every resource as it will be after the plan: desired arguments, computed values as recorded."""

    resources: list[ResourceView]


@dataclass(frozen=True)
class PlanResponse:
    # address -> computed values that are already known (an address from the pool); anything
    # not given stays "known after apply". Apply receives these in each Change's `after.computed`.
    planned: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Change:
    address: str
    action: Literal["create", "update", "delete", "replace"]
    before: ResourceView | None
    after: ResourceView | None


@dataclass(frozen=True)
class ApplyRequest:
    changes: list[Change]  # in dependency order: deletes (links first), then clusters, then links
    world: dict[str, ResourceView]  # every resource as it will be after the apply


@dataclass(frozen=True)
class ResourceResult:
    address: str
    ok: bool
    computed: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class StatusRequest:
    resources: list[ResourceView]


@dataclass(frozen=True)
class ResourceStatusReport:
    phase: Literal["INIT", "ACTIVE"]
    conditions: list[dict[str, Any]]


@dataclass(frozen=True)
class StatusResponse:
    statuses: dict[str, ResourceStatusReport]


class Provider(ABC):
    """Base of every provider. Subclasses are found through the `skyplan.providers` entry points."""

    name: ClassVar[str]
    settings_model: ClassVar[type[BaseModel]]
    # Settings that shape each cluster's own config. They become attributes of every cluster so
    # that changing one shows in the plan as an update of the clusters it rewrites. A cluster
    # field of the same name (listen_port) overrides the setting for that cluster.
    cluster_settings: ClassVar[tuple[str, ...]] = ()
    # Attributes known only after apply, per resource type; plans show "(known after apply)".
    computed_attributes: ClassVar[dict[str, tuple[str, ...]]] = {}
    # How those computed values must look when read back from a state, per resource type: they
    # reach files and commands, and a state may be written by anyone with access to its store.
    computed_models: ClassVar[dict[str, type[BaseModel]]] = {}

    def __init__(self, settings: BaseModel, paths: WorkspacePaths):
        self.settings = settings
        self.paths = paths

    @abstractmethod
    def validate(self, request: ValidateRequest) -> list[Diagnostic]:
        """Rules that only this provider knows; diagnostics carry document paths."""

    @abstractmethod
    def read(self, request: ReadRequest) -> ReadResponse:
        """Look at what exists (files, keys) and report where it differs from the state."""

    def plan(self, request: PlanRequest) -> PlanResponse:
        """Computed values known before apply (Terraform's planned values). Optional: by default
        nothing is known until apply."""
        return PlanResponse({})

    @abstractmethod
    def apply(self, request: ApplyRequest) -> Iterator[ResourceResult]:
        """Carry out the batch, yielding each resource's result as soon as it is known."""

    @abstractmethod
    def status(self, request: StatusRequest) -> StatusResponse:
        """Live status of resources (handshakes), as far as the provider can observe it."""


@lru_cache(maxsize=1)
def installed_providers() -> dict[str, Any]:
    # Scanning every installed distribution's metadata is slow; the answer cannot change
    # while the process runs.
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def provider_class(name: str) -> type[Provider]:
    available = installed_providers()
    if name not in available:
        known = ", ".join(sorted(available)) or "none"
        raise ProviderError(f"unknown provider '{name}'; installed providers: {known}")
    try:
        cls = available[name].load()
    except Exception as exc:  # a broken plugin must not take the CLI down with a traceback
        raise ProviderError(f"provider '{name}' failed to load: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ProviderError(f"provider '{name}' does not implement skyplan.providers.Provider")
    return cls


def provider_ref(name: str) -> dict[str, str]:
    """Where provider `name` comes from: its entry point and its distribution's version."""
    entry_point = installed_providers()[name]
    dist = getattr(entry_point, "dist", None)
    return {
        "name": name,
        "value": entry_point.value,
        "dist": getattr(dist, "name", ""),
        "version": getattr(dist, "version", ""),
    }


def provider_class_from_ref(ref: dict[str, str]) -> type[Provider] | None:
    """The class `ref` names, if that distribution is still installed at that version.

    Reading one distribution's version is far cheaper than scanning every entry point, which
    is what lets a cached configuration start a command quickly.
    """
    from importlib import import_module
    from importlib.metadata import PackageNotFoundError, version

    try:
        if not ref.get("dist") or version(ref["dist"]) != ref.get("version"):
            return None
        module, _, attribute = ref["value"].partition(":")
        cls = import_module(module)
        for part in attribute.split("."):
            cls = getattr(cls, part)
    except (PackageNotFoundError, ImportError, AttributeError, KeyError, ValueError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, Provider) and cls.name == ref.get("name") else None
