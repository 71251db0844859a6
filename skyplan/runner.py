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
from skyplan.providers import Provider, ReadBack, ReadRequest, Reading, ResourceView, WorkspacePaths
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
        """The recorded state, checked to hold what this provider needs of each resource, and
        every name and value in it to pass the rules the configuration's would (state/checks.py)."""
        from skyplan.state.checks import check_state
        from skyplan.state.model import check_shapes

        state = self.store.read()
        if state is not None:
            required = {
                "cluster": {"endpoint", "subnets", *type(self.provider).cluster_settings},
                "link": {"source", "target"},
            }
            check_shapes(state, required, self.store.describe())
            read_back = ReadBack(root=self.paths.root, configured=self.provider.settings)
            check_state(state, type(self.provider), self.store.describe(), read_back)
        return state

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


def make_store(backend: BackendSpec, paths: WorkspacePaths) -> tuple[StateStore, BackendRef]:
    """The store the configuration (or $SKYPLAN_BACKEND, which wins) names, and a reference to it."""
    url = os.environ.get("SKYPLAN_BACKEND") or None
    if url is not None or backend.type == "postgres":
        from skyplan.state.postgres import PostgresStateStore

        url = url or backend.url
        if not url:
            raise StateError("backend type 'postgres' needs a url (backend.url or SKYPLAN_BACKEND)")
        ref = BackendRef(
            type="postgres", workspace=backend.workspace, location=display_url(url), password_removed=has_password(url)
        )
        return PostgresStateStore(url, backend.workspace), ref
    from skyplan.state.local import FileStateStore

    store = FileStateStore(paths.data)
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
    return make_plan(ws, prior, desired=ws.desired(), do_refresh=saved.refresh, targets=targets, excludes=excludes)


def readable(state: State | None) -> list[ResourceView]:
    """Resources whose real form can be checked: complete, and not left half-done by a crash."""
    if state is None:
        return []
    clusters: dict[str, ResourceView] = {}
    links = []
    for r in state.resources:
        if r.pending == "create":
            continue
        if r.type == "link":
            links.append(r)
        elif "address" in r.computed and "public_key" in r.computed:
            clusters[r.name] = ResourceView("cluster", r.name, r.attributes, r.computed)
    # A link can be checked only when both its ends can.
    return [*clusters.values()] + [
        ResourceView("link", r.name, r.attributes, r.computed)
        for r in links
        if r.attributes["source"] in clusters and r.attributes["target"] in clusters
    ]


def refresh(ws: Workspace, prior: State | None) -> dict[str, Reading]:
    views = readable(prior)
    if not views:
        return {}
    return ws.provider.read(ReadRequest(resources=views)).readings


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
) -> Plan:
    from skyplan.plan.planner import plan
    from skyplan.plan.targeting import TARGETING_NOTE, resolve_scope

    targeted = resolve_scope(desired, prior, targets or [], excludes or [])
    if targeted is not None:
        scope = targeted if scope is None else set(scope) & targeted
    actual = refresh(ws, prior) if do_refresh else {}
    result = plan(
        desired,
        prior,
        actual,
        owner=owner,
        scope=scope,
        mode=mode,
        computed=type(ws.provider).computed_attributes,
    )
    if targeted is not None:
        chosen = sorted(targets or []) + [f"!{e}" for e in sorted(excludes or [])]
        result = result.model_copy(update={"notes": [TARGETING_NOTE, *result.notes], "targets": chosen})
    if ws.loaded is not None:
        ws.loaded.remember()
    return result


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
    return make_store(backend, WorkspacePaths.for_config(config_path))[0]


def check_targets(ws: Workspace, targets: list[str], excludes: list[str]) -> None:
    """Refuse unknown --target/--exclude addresses before the lock is taken (and written)."""
    if targets or excludes:
        from skyplan.plan.targeting import resolve_scope

        resolve_scope(ws.desired(), ws.read_state(), targets, excludes)
