"""The provider interface: a settings model and five calls, each a request in and a response out.

A provider turns resource changes into real things (files, tunnels). Its surface is small:
a settings model, `validate`, `read`, `plan` (optional: values known before apply), `apply` and
`status`, plus `upgrade` for resources a state recorded under an older `schema_version`.
Everything else a provider tells the core is a class field (what it computes, which settings
shape a cluster, what skyctl shows), so that the core needs to know nothing of what it manages.

Every response carries diagnostics. Expected problems (a damaged key file, a file that cannot
be read, a symlink refused) are diagnostics with severity "error", never exceptions: the core
renders them in one place and stops with exit code 1. An exception from a provider is a bug.

`apply` takes the whole ordered batch of an apply, like Terraform's ApplyResourceChange handles
create, update and delete in one call: WireGuard keeps every link of a cluster in one file, and
only the whole batch tells which files change, so each is written once per apply.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from skyplan.config.diagnostics import Diagnostic
from skyplan.sdk.resources import ResourceType, ResourceView


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


# -- requests and responses ---------------------------------------------------------------------


@dataclass(frozen=True)
class ValidateRequest:
    clusters: list[ResourceView]  # in file order: index i is clusters[i] of the document
    links: list[ResourceView]


@dataclass(frozen=True)
class ValidateResponse:
    diagnostics: list[Diagnostic] = field(default_factory=list)  # with document paths


class ReadMemo:
    """What a provider kept from an earlier refresh of exactly the same world: the same state,
    byte for byte, judged by the same code, with the same settings, in the same workspace.

    The core keeps it sealed with this user's secret (skyplan/seal.py), outside anything a
    repository holds: a pull request can neither plant nor edit one. A provider uses it to skip
    work whose outcome it already knows (WireGuard: a world whose files are all exactly as they
    were when a refresh found no drift), and must still read whatever could have changed since.
    """

    def recall(self) -> bytes | None:
        """What `keep` stored for this world, or None."""
        return None

    def keep(self, body: bytes) -> None:
        """Store `body` for the next refresh of this world (a few hundred bytes: a digest)."""


@dataclass(frozen=True)
class ReadRequest:
    resources: list[ResourceView]  # what the state says exists
    # Resources being renamed (a `moved` entry, `state mv`): address -> the name their files may
    # still have, when a run that was moving them was interrupted.
    previous_names: dict[str, str] = field(default_factory=dict)
    # Work an interrupted apply left on a resource: address -> "replace", "update" or "delete".
    # What a provider finds may be that work half-done (a new key already made), which is not drift.
    pending: dict[str, str] = field(default_factory=dict)
    # The memo of this world (ReadMemo), when the core can tell it is the world a refresh saw
    # before: a state read as it was recorded, with no move made in it. None otherwise.
    memo: ReadMemo | None = None


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
    # Errors stop the plan (a file that cannot be read): the core shows each and exits 1.
    # Warnings (a host that could not be reached) are shown with the plan, which goes on.
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass(frozen=True)
class PlanRequest:
    """Every resource as it will be after the plan: desired arguments, computed values as recorded."""

    resources: list[ResourceView]


@dataclass(frozen=True)
class PlanResponse:
    # address -> computed values that are already known (an address from the pool); anything
    # not given stays "known after apply". Apply receives these in each Change's `after.computed`.
    planned: dict[str, dict[str, Any]]
    diagnostics: list[Diagnostic] = field(default_factory=list)  # an error stops the plan


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
    """The outcome of one change. A failed one says why in `diagnostics` (at least one error)."""

    address: str
    ok: bool
    computed: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @classmethod
    def failed(cls, address: str, *reasons: str, computed: dict[str, Any] | None = None) -> ResourceResult:
        return cls(address, ok=False, computed=computed or {}, diagnostics=[Diagnostic(r) for r in reasons])

    @property
    def error(self) -> str | None:
        """Why it failed, as one line (the state records it); None if it did not."""
        if self.ok:
            return None
        from skyplan.render.errors import failure_reason

        return failure_reason(self.diagnostics)


@dataclass(frozen=True)
class StatusRequest:
    resources: list[ResourceView]


@dataclass(frozen=True)
class ResourceStatusReport:
    """A resource as seen live. FAILED says why in a condition whose status is "False"."""

    phase: Literal["INIT", "ACTIVE", "FAILED"]
    conditions: list[dict[str, Any]]


@dataclass(frozen=True)
class StatusResponse:
    statuses: dict[str, ResourceStatusReport]
    diagnostics: list[Diagnostic] = field(default_factory=list)  # warnings: status is best effort


@dataclass(frozen=True)
class Display:
    """What skyctl shows of a provider's computed values for one resource type.

    `columns`: (heading, computed key) pairs added to `skyctl get` tables; `missing` stands in
    for a value not computed yet. `status`: computed keys copied into the status of `-o yaml`.
    """

    columns: tuple[tuple[str, str], ...] = ()
    status: tuple[str, ...] = ()
    missing: str = "<pending>"


@dataclass(frozen=True)
class ImportSource:
    """One existing configuration file to adopt (`skyplan import`), as the user named it."""

    display: str  # the path as given on the command line: messages name the file so
    text: str
    name: str  # the resource name the core chose for it (the file's stem, or its folder's name)


@dataclass(frozen=True)
class ImportHost:
    """One live host to adopt (`skyplan import --gateway`): the provider reads it where it runs."""

    address: str  # as the user gave it; it becomes the cluster's `gateway`
    name: str  # the resource name the core chose for it


@dataclass(frozen=True)
class ImportRequest:
    sources: list[ImportSource]
    settings: dict[str, Any] = field(default_factory=dict)  # provider settings the user chose (address_pool)
    # Where the key material goes: None for a preview, which writes nothing.
    write_to: WorkspacePaths | None = None
    hosts: list[ImportHost] = field(default_factory=list)
    # The folder links.yaml goes in: relative paths of `settings` (an ssh config) start there.
    root: Path | None = None


@dataclass(frozen=True)
class ImportResponse:
    """What the files amount to, as links.yaml data, and what of them cannot be carried.

    `document` holds the `provider`, `clusters` and `links` sections, plain data; `computed`
    the computed values of each resource (address -> values) as a state records them. `skipped`
    names, per file and line, what the files hold that the configuration cannot say (warnings).
    Errors in `diagnostics` stop the import: nothing is written. With `write_to`, the provider has
    written its secrets there (`written`, every new file), each new and never over another.
    """

    document: dict[str, Any] = field(default_factory=dict)
    computed: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[Diagnostic] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


# -- the provider ---------------------------------------------------------------------------------


class Provider(ABC):
    """Base of every provider. Subclasses are found through the `skyplan.providers` entry points."""

    name: ClassVar[str]
    settings_model: ClassVar[type[BaseModel]]
    # Settings that shape each cluster's own config. They become attributes of every cluster so
    # that changing one shows in the plan as an update of the clusters it rewrites.
    cluster_settings: ClassVar[tuple[str, ...]] = ()
    # links.yaml cluster fields that override a cluster setting for that one cluster:
    # cluster field -> setting name (WireGuard: {"listen_port": "listen_port", "mtu": "mtu", …}).
    cluster_overrides: ClassVar[Mapping[str, str]] = {}
    # links.yaml link fields whose default is a provider setting: link field -> setting name
    # (WireGuard: {"preshared_key": "preshared_keys"}). A link records the field only when its
    # effective value is set (not None or False).
    link_defaults: ClassVar[Mapping[str, str]] = {}
    # Attributes known only after apply, per resource type; plans show "(known after apply)".
    # A recorded resource is read (checked against what is real) only once it has them all.
    computed_attributes: ClassVar[Mapping[ResourceType, tuple[str, ...]]] = {}
    # How those computed values must look when read back from a state, per resource type: they
    # reach files and commands, and a state may be written by anyone with access to its store.
    computed_models: ClassVar[Mapping[ResourceType, type[BaseModel]]] = {}
    # How the provider's own arguments must look when read back from a state, per resource type
    # (WireGuard: an external peer's key, a link's preshared_key): checked against each recorded
    # resource's attributes, keys the model does not name ignored, before anything uses them.
    # A resource that holds none of the model's fields is not checked: give every field a default.
    argument_models: ClassVar[Mapping[ResourceType, type[BaseModel]]] = {}
    # The version of the shape of this provider's attributes and computed values. The state
    # records it with each resource (none recorded: 0); raise it with each change of shape and
    # teach `upgrade` to bring older resources up to it.
    schema_version: ClassVar[int] = 0
    # Arguments that cannot change in place, per resource type: attribute -> why, as a plan
    # says it (Terraform's RequiresReplace). A change of one is planned as a replace (-/+).
    replace_on_change: ClassVar[Mapping[ResourceType, Mapping[str, str]]] = {}
    # Arguments whose presence cannot change in place, per resource type: attribute -> why.
    # Going from absent to present (or back) is a replace (-/+); a new value of one that stays
    # present is an update in place (WireGuard: a cluster becoming an external peer).
    replace_on_presence: ClassVar[Mapping[ResourceType, Mapping[str, str]]] = {}
    # What skyctl shows of computed values, per resource type.
    display_spec: ClassVar[Mapping[ResourceType, Display]] = {}

    def __init__(self, settings: BaseModel, paths: WorkspacePaths):
        self.settings = settings
        self.paths = paths

    def upgrade(self, view: ResourceView, from_version: int) -> ResourceView:
        """`view` as recorded under schema `from_version`, in the shape of `schema_version`.

        Called before anything else sees a recorded resource (Terraform's UpgradeResourceState):
        fill a new setting with the value that matches what the older version did, rename or
        drop old ones. A pure function of the view: it must not look at files. By default the
        shape has never changed.
        """
        return view

    @abstractmethod
    def validate(self, request: ValidateRequest) -> ValidateResponse:
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

    # An optional capability: adopting configuration files that another tool wrote. A class
    # method, because it makes the settings an instance would be built with.
    can_import: ClassVar[bool] = False

    @classmethod
    def import_configs(cls, request: ImportRequest) -> ImportResponse:
        """The configuration and computed values that `request`'s files amount to (`skyplan import`)."""
        return ImportResponse(diagnostics=[Diagnostic(f"provider '{cls.name}' cannot import configuration files")])
