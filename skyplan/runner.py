"""Whole operations on a workspace: load, lock, refresh, plan, apply. Used by both CLIs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from skyplan.config.loader import LoadedConfig, load_config
from skyplan.config.models import BackendSpec
from skyplan.errors import StateError
from skyplan.plan.model import DesiredResource, Plan
from skyplan.providers import Provider, ReadRequest, Reading, ResourceView, WorkspacePaths
from skyplan.state.model import Owner, State
from skyplan.state.store import LockInfo, StateStore


@dataclass
class Workspace:
    paths: WorkspacePaths
    provider: Provider
    store: StateStore
    loaded: LoadedConfig | None = None  # None when skyctl runs without a links.yaml

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

    def desired(self, owner: Owner = "file") -> dict[str, DesiredResource]:
        from skyplan.plan.desired import desired_resources

        assert self.loaded is not None
        return desired_resources(self.loaded.config, type(self.provider), self.loaded.settings, owner)


def open_workspace(config_path: Path, display: str | None = None) -> Workspace:
    loaded = load_config(config_path, display=display)
    paths = WorkspacePaths.for_config(config_path)
    return Workspace(paths=paths, provider=loaded.provider, store=make_store(loaded.config.backend, paths), loaded=loaded)


def make_store(backend: BackendSpec, paths: WorkspacePaths) -> StateStore:
    url = os.environ.get("SKYPLAN_BACKEND") or None
    if url is not None or backend.type == "postgres":
        from skyplan.state.postgres import PostgresStateStore

        url = url or backend.url
        if not url:
            raise StateError("backend type 'postgres' needs a url (backend.url or SKYPLAN_BACKEND)")
        return PostgresStateStore(url, backend.workspace)
    from skyplan.state.local import FileStateStore

    return FileStateStore(paths.data)


def readable(state: State | None) -> list[ResourceView]:
    """Resources whose real form can be checked: complete, and not left half-done by a crash."""
    if state is None:
        return []
    views = {}
    for r in state.resources:
        if r.pending == "create" or (r.type == "cluster" and not {"address", "public_key"} <= set(r.computed)):
            continue
        views[r.address] = ResourceView(r.type, r.name, r.attributes, r.computed)
    # A link can be checked only when both its ends can.
    return [
        v
        for v in views.values()
        if v.type == "cluster"
        or (f"cluster.{v.attributes['source']}" in views and f"cluster.{v.attributes['target']}" in views)
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
) -> Plan:
    from skyplan.plan.planner import plan

    actual = refresh(ws, prior) if do_refresh else {}
    return plan(
        desired,
        prior,
        actual,
        owner=owner,
        scope=scope,
        mode=mode,
        computed=type(ws.provider).computed_attributes,
    )


def open_skyctl_workspace(config_file: str | None) -> Workspace:
    """skyctl's workspace: --config or $SKYPLAN_CONFIG, else ./links.yaml, else defaults here."""
    if config_file:
        return open_workspace(Path(config_file), display=config_file)
    here = Path.cwd() / "links.yaml"
    if here.exists():
        return open_workspace(here, display="links.yaml")
    # No file: the provider's defaults, state in ./.skyplan, as `skyctl` in an empty folder.
    loaded = load_config(here, display="links.yaml", text="version: 1\n")
    paths = WorkspacePaths.for_config(here)
    return Workspace(paths=paths, provider=loaded.provider, store=make_store(loaded.config.backend, paths), loaded=loaded)
