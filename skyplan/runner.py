"""Whole operations on a workspace: load, lock, refresh, plan, apply. Used by both CLIs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from skyplan.config.loader import LoadedConfig, load_config
from skyplan.config.models import BackendSpec
from skyplan.errors import SkyplanError, StateError
from skyplan.plan.model import DesiredResource, Plan
from skyplan.plan.saved import BackendRef, SavedPlan
from skyplan.state.urls import display_url, has_password
from skyplan.config.diagnostics import Diagnostic
from skyplan.sdk import Address, Provider, ReadBack, ReadRequest, Reading, ResourceView, WorkspacePaths
from skyplan.state.model import Owner, State
from skyplan.state.store import LockInfo, StateStore


@dataclass
class Workspace:
    paths: WorkspacePaths
    provider: Provider
    store: StateStore
    loaded: LoadedConfig | None = None
    backend: BackendRef | None = None

    @property
    def provider_name(self) -> str:
        return self.provider.name

    @contextlib.contextmanager
    def locked(self, operation: str, timeout: float) -> Iterator[LockInfo]:
        info = self.store.lock(operation, timeout)
        try:
            yield info
        finally:
            self.store.unlock(info.id)

    def read_state(self) -> State | None:
        """The recorded state, upgraded to the provider's schema (state/upgrade.py), checked to
        hold what the core and the provider need of each resource, and every name and value in
        it to pass the rules the configuration's would (state/checks.py)."""
        from skyplan.state.checks import check_state
        from skyplan.state.model import check_shapes
        from skyplan.state.upgrade import upgrade_state

        state = self.store.read()
        if state is None:
            self._refuse_stranded_state()
        if state is not None:
            provider_cls = type(self.provider)
            # Upgraded first: a setting added since the state was written is filled in by the
            # provider, so only a damaged entry lacks what the provider declares it needs.
            state = upgrade_state(state, self.provider, self.store.describe())
            required = {
                "cluster": {"endpoint", "subnets", *provider_cls.cluster_settings},
                "link": {"source", "target"},
            }
            check_shapes(state, required, self.store.describe())
            read_back = ReadBack(root=self.paths.root, configured=self.provider.settings)
            check_state(state, provider_cls, self.store.describe(), read_back)
        return state

    def _refuse_stranded_state(self) -> None:
        """An empty backend is a new workspace only when no state of this one lives elsewhere.

        Planning against it would hand out keys and addresses again and strand the real state.
        """
        from skyplan.state.local import FileStateStore
        from skyplan.state.migrate import MigrationRecord

        local = self.paths.data / "state.json"
        if not isinstance(self.store, FileStateStore):
            if local.exists() or local.is_symlink():
                raise StateError(
                    f"the state backend {self.store.describe()} is empty, but {local} holds this workspace's "
                    "state; run `skyplan state migrate` to move it there (lineage and serial kept)"
                )
            return
        record = MigrationRecord.read(self.paths.data)
        if record is not None:
            raise StateError(
                f"this workspace's state was moved to {record.location} (workspace \"{record.workspace}\") by "
                f"`skyplan state migrate` on {record.at}, but the configuration now names the local backend; "
                "restore its backend block, or run `skyplan state migrate` to bring the state back here"
            )

    def desired(self, owner: Owner = "file") -> dict[str, DesiredResource]:
        from skyplan.plan.desired import desired_resources

        assert self.loaded is not None and not self.loaded.partial
        return desired_resources(self.loaded.config, type(self.provider), self.loaded.settings, owner)


def open_workspace(
    config_path: Path, display: str | None = None, variables: dict | None = None, *, resources: bool = True
) -> Workspace:
    """The workspace of `config_path`; `resources=False` when its clusters and links are not needed."""
    paths = WorkspacePaths.for_config(config_path)
    loaded = load_config(config_path, display=display, variables=variables, cache_dir=paths.data / "cache", resources=resources)
    store, backend = make_store(loaded.config.backend, paths)
    return Workspace(paths=paths, provider=loaded.provider, store=store, loaded=loaded, backend=backend)


def make_store(
    backend: BackendSpec, paths: WorkspacePaths, url_source: str = "backend.url"
) -> tuple[StateStore, BackendRef]:
    """The store the configuration (or $SKYPLAN_BACKEND, which wins) names, and a reference to it.

    `url_source` says where `backend.url` came from, for the message if it is not a valid URL.
    """
    url = os.environ.get("SKYPLAN_BACKEND") or None
    if url is not None or backend.type == "postgres":
        from skyplan.state.postgres import PostgresStateStore
        from skyplan.state.urls import URLProblem, check_url

        source = "SKYPLAN_BACKEND" if url is not None else url_source
        url = url or backend.url
        if not url:
            raise StateError("backend type 'postgres' needs a url (backend.url or SKYPLAN_BACKEND)")
        try:
            check_url(url)
        except URLProblem as exc:
            raise StateError(f"{source}: {exc}") from None
        ref = BackendRef(
            type="postgres", workspace=backend.workspace, location=display_url(url), password_removed=has_password(url)
        )
        return PostgresStateStore(url, backend.workspace), ref
    from skyplan.state.local import FileStateStore

    store = FileStateStore(paths.data, within=paths.root)
    return store, BackendRef(type="local", workspace=backend.workspace, location=str(store.path))


def open_saved_plan(path: Path, config_path: Path, display: str, variables: dict | None = None) -> tuple[Workspace, SavedPlan]:
    """The workspace of the configuration a saved plan was made from, and the plan.

    Nothing in a plan file is believed (plan/saved.py): the configuration is the one named on
    the command line, and it must be the one the plan was made from, unchanged.
    """
    from skyplan.errors import PlanError
    from skyplan.plan.saved import check_made_from, read_plan_file

    saved = read_plan_file(path)
    check_made_from(saved, path, config_path, display)
    ws = open_workspace(config_path, display=display, variables=variables)
    assert ws.loaded is not None and ws.backend is not None
    try:
        if ws.loaded.digest != saved.config_digest:
            raise PlanError(
                f"Saved plan {path} was altered or no longer matches {display}: the configuration is not the "
                "one the plan was made from. Nothing was done; run skyplan plan again"
            )
        if ws.backend != saved.backend:
            raise PlanError(
                f"Saved plan {path} was made against the state at {saved.backend.location}, "
                f"but this workspace's state is at {ws.backend.location}."
            )
    except PlanError:
        ws.store.close()
        raise
    return ws, saved


def replan_saved(ws: Workspace, saved: SavedPlan, prior: State | None) -> Plan:
    """The plan that the configuration and the state give now, made as the saved one was."""
    from skyplan.plan.saved import targeting_of

    targets, excludes = targeting_of(saved)
    destroy = saved.plan.mode == "destroy"
    # Operator choices that the plan records, as it records its targets: each can only ask for
    # what links.yaml and the state allow (a destroy, a new key for a declared cluster).
    replace = [c.address for c in saved.plan.changes if c.action_reason == "replace_by_request"]
    return make_plan(
        ws,
        prior,
        desired={} if destroy else ws.desired(),
        mode=saved.plan.mode,
        do_refresh=saved.refresh,
        targets=targets,
        excludes=excludes,
        replace=replace,
    )


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


def refresh(ws: Workspace, prior: State | None, previous: dict[str, str] | None = None) -> dict[str, Reading]:
    """Readings of `prior` (moves already made in it); `previous` names where moved files may still be.

    A problem the provider reports (a file it cannot read) stops the plan: ProviderError."""
    views = readable(prior, type(ws.provider))
    if not views:
        return {}
    previous_names = {new: Address.parse(old).name for new, old in (previous or {}).items()}
    response = ws.provider.read(ReadRequest(resources=views, previous_names=previous_names))
    raise_errors(response.diagnostics)
    return response.readings


def raise_errors(diagnostics: list[Diagnostic]) -> None:
    """ProviderError if a provider reported an error: its message is the first, as one line, and
    it carries them all (`diagnostics`) for a renderer that shows each."""
    from skyplan.config.diagnostics import errors_in
    from skyplan.errors import ProviderError

    errors = errors_in(diagnostics)
    if errors:
        exc = ProviderError(str(errors[0]))
        exc.diagnostics = errors  # type: ignore[attr-defined]
        raise exc


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
    desired: dict[str, DesiredResource],
    owner: Owner = "file",
    mode: str = "normal",
    scope: Iterable[str] | None = None,
    do_refresh: bool = True,
    targets: list[str] | None = None,
    excludes: list[str] | None = None,
    replace: list[str] | None = None,
) -> Plan:
    from skyplan.plan.moves import apply_moves
    from skyplan.plan.planner import plan
    from skyplan.plan.targeting import TARGETING_NOTE, resolve_scope

    replace = sorted(set(replace or []))
    moves = configured_moves(ws) if owner == "file" and mode == "normal" else []
    moved, previous = apply_moves(prior, moves)
    check_replace(desired, moved, replace, mode)
    targeted = resolve_scope(desired, moved, targets or [], excludes or [])
    if targeted is not None:
        scope = targeted if scope is None else set(scope) & targeted
    scope = set(scope) if scope is not None else None
    actual = refresh(ws, moved, previous) if do_refresh else {}
    result = plan(
        desired,
        prior,
        actual,
        owner=owner,
        scope=scope,
        mode=mode,
        computed=type(ws.provider).computed_attributes,
        planned=planned_values(ws.provider, desired, moved, scope, owner) if mode == "normal" else {},
        replace=replace,
        moves=moves,
    )
    if targeted is not None:
        chosen = sorted(targets or []) + [f"!{e}" for e in sorted(excludes or [])]
        result = result.model_copy(update={"notes": [TARGETING_NOTE, *result.notes], "targets": chosen})
    if ws.loaded is not None:
        ws.loaded.remember()
    return result


def configured_moves(ws: Workspace) -> list[tuple[str, str]]:
    """The `moved` entries of the configuration, as (from, to) addresses."""
    if ws.loaded is None or ws.loaded.partial:
        return []
    return [(entry.from_, entry.to) for entry in ws.loaded.config.moved]


def check_replace(desired: dict[str, DesiredResource], prior: State | None, replace: list[str], mode: str) -> None:
    """Refuse --replace addresses that are malformed or name nothing, and --replace in a destroy."""
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
        raise PlanError("; ".join(problems))


def open_skyctl_workspace(config_file: str | None, variables: dict | None = None) -> Workspace:
    """skyctl's workspace: --config or $SKYPLAN_CONFIG, else ./links.yaml, else defaults here."""
    # skyctl works on the state; the file gives it settings, never clusters or links.
    if config_file:
        return open_workspace(Path(config_file), display=config_file, variables=variables, resources=False)
    here = Path.cwd() / "links.yaml"
    if here.exists():
        return open_workspace(here, display="links.yaml", variables=variables, resources=False)
    template = here.with_name("links.yaml.j2")
    if template.exists():
        # Default settings would quietly differ from the template's (interface, hooks).
        raise SkyplanError(
            "this folder's configuration is links.yaml.j2, a template: "
            "pass --config links.yaml.j2 with its variables (--var, --var-file)"
        )
    # No file: the provider's defaults, state in ./.skyplan, as `skyctl` in an empty folder.
    loaded = load_config(here, display="links.yaml", text="version: 1\n")
    paths = WorkspacePaths.for_config(here)
    store, backend = make_store(loaded.config.backend, paths)
    return Workspace(paths=paths, provider=loaded.provider, store=store, loaded=loaded, backend=backend)


def open_state(config_path: Path, display: str) -> StateStore:
    """The store of a workspace whose configuration may be missing or broken.

    `state list/show/rm`, `show` and `force-unlock` are how a user looks into and repairs a
    workspace; they must not depend on links.yaml being valid, only on where the state lives.
    """
    try:
        return open_workspace(config_path, display=display, resources=False).store
    except SkyplanError:
        pass
    backend = BackendSpec()
    try:
        from ruamel.yaml import YAML

        document = next(iter(YAML(typ="safe").load_all(config_path.read_text(errors="replace"))), None)
        if isinstance(document, dict) and isinstance(document.get("backend"), dict):
            backend = BackendSpec.model_validate(document["backend"])
    except Exception:  # noqa: BLE001 - a file this broken has no say: the defaults apply
        pass
    return make_store(backend, WorkspacePaths.for_config(config_path), f"{display}: backend.url")[0]


def provider_name(config_path: Path) -> str | None:
    """The provider `config_path` names, None if the file cannot say (missing or broken)."""
    try:
        return load_config(config_path, resources=False).provider.name
    except SkyplanError:
        return None


def check_targets(ws: Workspace, targets: list[str], excludes: list[str], replace: list[str] | None = None, mode: str = "normal") -> None:
    """Refuse unknown --target/--exclude/--replace addresses before the lock is taken (and written)."""
    if targets or excludes or replace:
        from skyplan.plan.moves import apply_moves
        from skyplan.plan.targeting import resolve_scope

        desired = ws.desired() if mode == "normal" else {}
        prior, _ = apply_moves(ws.read_state(), configured_moves(ws) if mode == "normal" else [])
        check_replace(desired, prior, sorted(set(replace or [])), mode)
        resolve_scope(ws.desired(), prior, targets, excludes)
