"""The one place that builds a workspace: its configuration, its provider and its state store.

Every command starts here: from a links.yaml path (`open_workspace`), as skyctl finds its
workspace (`open_skyctl_workspace`), from a saved plan (`open_saved_plan`), or, for commands
that only look at or repair the state, from a configuration that may be broken (`open_state`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from skyplan import collector
from skyplan.errors import SkyplanError, StateError
from skyplan.sdk import Provider, ReadBack, WorkspacePaths

if TYPE_CHECKING:
    # Imported where used: every command starts here, `skyctl get` among them, and it needs
    # neither plans nor saved plans (STYLE.md: `skyctl get link` starts fast).
    from skyplan.config.loader import LoadedConfig
    from skyplan.config.models import BackendSpec
    from skyplan.plan.model import DesiredResource
    from skyplan.plan.saved import BackendRef, SavedPlan
    from skyplan.state.model import Owner, State
    from skyplan.state.store import LockInfo, StateStore


@dataclass
class Workspace:
    """A configuration with the provider it names, configured, and the store its state is in."""

    paths: WorkspacePaths
    provider: Provider
    store: StateStore
    loaded: LoadedConfig | None = None
    # Where the state lives, as a saved plan records it: made when first asked for, since
    # building it takes the saved-plan models, which most commands never load.
    backend_of: Callable[[], BackendRef] | None = None
    # The verdict key of the state read_state last checked in full, until it is recorded.
    _passed: str | None = field(default=None, init=False, repr=False)
    # The state read last and the key of what it was read from (state/checked.py verdict_key;
    # None when its store cannot tell which bytes it read).
    _last_read: tuple[State, str | None] | None = field(default=None, init=False, repr=False)

    @property
    def backend(self) -> BackendRef | None:
        return self.backend_of() if self.backend_of is not None else None

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

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            # A provider may hold connections (the WireGuard one: SSH to gateways, kept from a
            # refresh for the apply that follows it); they end with the command, also when the
            # store's own closing fails (a lost database connection).
            close_provider = getattr(self.provider, "close", None)
            if close_provider is not None:
                close_provider()

    def read_state(self) -> State | None:
        """The recorded state, upgraded to the provider's schema (state/upgrade.py), checked to
        hold what the core and the provider need of each resource, and every name and value in
        it to pass the rules the configuration's would (state/checks.py)."""
        with collector.paused(settle=True):  # a state's records hold no cycles (collector.py)
            return self._read_state()

    def _read_state(self) -> State | None:
        from skyplan.state import checked
        from skyplan.state.upgrade import upgrade_state

        state = self.store.read()
        if state is None:
            self._refuse_stranded_state()
            return None
        # Upgraded first: a setting added since the state was written is filled in by the
        # provider, so only a damaged entry lacks what the provider declares it needs.
        state = upgrade_state(state, self.provider, self.store.describe())
        # A state that passed every check before, byte for byte, with the same code, settings
        # and workspace, passes again: the sealed record says so (state/checked.py).
        digest = self.store.read_digest
        key = checked.verdict_key(digest, self.provider, self.paths.root) if digest is not None else None
        folder = self.paths.data / "cache"
        if key is not None and (key == self._passed or checked.passed(folder, key, self.paths.root)):
            self._last_read = (state, key)
            return state  # (or this command checked it already, and has not recorded it yet)
        self._check(state)
        # Recorded once the command has used the state successfully (remember): a command
        # that fails later writes nothing.
        self._passed = key
        self._last_read = (state, key)
        return state

    def refresh_memo(self, state: State | None):
        """The provider's memo of the world of `state` (state/refreshed.py), if `state` is the
        very one this command read last, as it was recorded, and its store can say which bytes
        it was; None otherwise (a state with moves made in it, or one built here)."""
        key = self._key_of(state)
        if key is None:
            return None
        from skyplan.state import refreshed

        return refreshed.RefreshMemo(self.paths.data / "cache", refreshed.world_key(key), self.paths.root)

    def _key_of(self, state: State | None) -> str | None:
        """The checks' key (state/checked.py) of `state` if it is the very one read last, as it
        was recorded, by a store that can say which bytes it read; None otherwise."""
        if state is None or self._last_read is None or self._last_read[0] is not state:
            return None
        return self._last_read[1]

    def no_changes_record(self, state: State | None):
        """The record of a plan that found no changes (plan/unchanged.py) for this configuration
        text and `state`, if `state` is the very one this command read last, as it was recorded,
        and the configuration was loaded whole; None otherwise."""
        key = self._key_of(state)
        if key is None or self.loaded is None or self.loaded.partial or not self.loaded.digest or self.loaded.diagnostics:
            return None
        from skyplan.plan.unchanged import NoChangesRecord

        return NoChangesRecord(self.paths.data / "cache", key, self.loaded.digest, self.paths.root)

    def _check(self, state: State) -> None:
        """Refuse a state lacking what the core and the provider need, or holding what the
        configuration's rules refuse."""
        from skyplan.state.checks import check_state
        from skyplan.state.model import check_shapes

        provider_cls = type(self.provider)
        required = {
            "cluster": {"subnets", *provider_cls.cluster_settings},
            "link": {"source", "target"},
        }
        check_shapes(state, required, self.store.describe())
        read_back = ReadBack(root=self.paths.root, configured=self.provider.settings)
        check_state(state, provider_cls, self.store.describe(), read_back)

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

    def remember_config(self) -> None:
        """Cache the configuration, and the verdict on the state read: an operation calls this,
        under the lock, once its plan is made."""
        from skyplan.state import checked

        # Under the lock: what a run killed while writing the cache left there goes first.
        checked.tidy(self.paths.data / "cache", self.paths.root)
        if self.loaded is not None:
            from skyplan.config.loader import remember

            remember(self.loaded, self.paths.root)
        self.remember_checked()

    def remember_checked(self) -> None:
        """Record that the state read last passed every check (state/checked.py), if it was
        checked in full: `skyctl get` calls this once it has shown the state."""
        if self._passed is not None:
            from skyplan.state import checked

            checked.record(self.paths.data / "cache", self._passed, self.paths.root)
            self._passed = None


def make_provider(cls: type[Provider], settings, paths: WorkspacePaths) -> Provider:
    """The provider `cls`, configured with `settings` for the workspace at `paths`."""
    return cls(settings, paths)


def _build(loaded: LoadedConfig, paths: WorkspacePaths) -> Workspace:
    store, backend_of = _open_store(loaded.config.backend, paths)
    provider = make_provider(loaded.provider_class, loaded.settings, paths)
    return Workspace(paths=paths, provider=provider, store=store, loaded=loaded, backend_of=backend_of)


def open_workspace(
    config_path: Path, display: str | None = None, variables: dict | None = None, *, resources: bool = True
) -> Workspace:
    """The workspace of `config_path`; `resources=False` when its clusters and links are not needed."""
    from skyplan.config.loader import load_config

    paths = WorkspacePaths.for_config(config_path)
    loaded = load_config(config_path, display=display, variables=variables, cache_dir=paths.data / "cache", resources=resources)
    return _build(loaded, paths)


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
    from skyplan.config.loader import load_config

    # No file: the provider's defaults, state in ./.skyplan, as `skyctl` in an empty folder.
    return _build(load_config(here, display="links.yaml", text="version: 1\n"), WorkspacePaths.for_config(here))


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


def open_state(config_path: Path, display: str) -> StateStore:
    """The store of a workspace whose configuration may be missing or broken.

    `state list/show/rm`, `show` and `force-unlock` are how a user looks into and repairs a
    workspace; they must not depend on links.yaml being valid, only on where the state lives.
    """
    try:
        return open_workspace(config_path, display=display, resources=False).store
    except SkyplanError:
        pass
    backend = _backend_block(config_path, display)
    return make_store(backend, WorkspacePaths.for_config(config_path), f"{display}: backend.url")[0]


def _backend_block(config_path: Path, display: str) -> BackendSpec:
    """The backend block of a configuration that does not validate, else the defaults.

    Read with the configuration's own parser and its limits (config/source.py): a file too big,
    too deep or too expanded has no say, and the defaults apply, as they do for a broken one.
    """
    from pydantic import ValidationError

    from skyplan.config import source
    from skyplan.config.models import BackendSpec

    try:
        text = source.read_text(config_path, display)
        parsed = source.parse_fast(text, config_path, display) or source.parse(text, config_path, display)
    except SkyplanError:
        return BackendSpec()
    document = parsed.documents[0].data if parsed.documents else None
    if isinstance(document, dict) and isinstance(document.get("backend"), dict):
        try:
            return BackendSpec.model_validate(document["backend"])
        except ValidationError:
            pass
    return BackendSpec()


def make_store(
    backend: BackendSpec, paths: WorkspacePaths, url_source: str = "backend.url"
) -> tuple[StateStore, BackendRef]:
    """The store the configuration (or $SKYPLAN_BACKEND, which wins) names, and a reference to it.

    `url_source` says where `backend.url` came from, for the message if it is not a valid URL.
    """
    store, backend_of = _open_store(backend, paths, url_source)
    return store, backend_of()


def _open_store(
    backend: BackendSpec, paths: WorkspacePaths, url_source: str = "backend.url"
) -> tuple[StateStore, Callable[[], BackendRef]]:
    """make_store, with the reference made only when it is asked for (once)."""
    from functools import lru_cache

    url = os.environ.get("SKYPLAN_BACKEND") or None
    if url is not None or backend.type == "postgres":
        from skyplan.state.postgres import PostgresStateStore
        from skyplan.state.urls import URLProblem, check_url, display_url, has_password

        source = "SKYPLAN_BACKEND" if url is not None else url_source
        url = url or backend.url
        if not url:
            raise StateError("backend type 'postgres' needs a url (backend.url or SKYPLAN_BACKEND)")
        try:
            check_url(url)
        except URLProblem as exc:
            raise StateError(f"{source}: {exc}") from None
        fields = {"type": "postgres", "location": display_url(url), "password_removed": has_password(url)}
        store: StateStore = PostgresStateStore(url, backend.workspace)
    else:
        from skyplan.state.local import FileStateStore

        store = FileStateStore(paths.data, within=paths.root)
        fields = {"type": "local", "location": str(store.path)}

    @lru_cache(maxsize=1)
    def backend_of() -> BackendRef:
        from skyplan.plan.saved import BackendRef

        return BackendRef(workspace=backend.workspace, **fields)

    return store, backend_of


def configured_provider_name(config_path: Path) -> str | None:
    """The provider `config_path` names, None if the file cannot say (missing or broken)."""
    from skyplan.config.loader import load_config

    try:
        return load_config(config_path, resources=False).provider_class.name
    except SkyplanError:
        return None
