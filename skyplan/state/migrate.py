"""`state migrate`: the state moved into the backend the configuration now names, lineage and serial kept.

The local state folder keeps a small record of a migration out of it (`migrated.json`: where
to, never a password), so that a workspace whose `backend:` block goes missing is stopped
instead of starting again with an empty state, and so that migrating back knows where from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skyplan import atomic, seal
from skyplan.errors import StateError
from skyplan.state.model import State, now_iso
from skyplan.state.store import StateStore

RECORD_FILE = "migrated.json"
RETIRED_SUFFIX = ".migrated"


@dataclass(frozen=True)
class MigrationRecord:
    """Where `state migrate` last moved this workspace's local state."""

    type: str
    location: str  # a database URL without its password
    workspace: str
    at: str

    @classmethod
    def read(cls, data_dir: Path) -> MigrationRecord | None:
        path = data_dir / RECORD_FILE
        try:
            raw = atomic.read_bytes(path, data_dir.parent, limit=64 * 1024)
        except OSError:
            raise StateError(f"{path} cannot be read; remove it if the state is where the configuration says") from None
        # Believed only with this user's seal: a record that came with a pull request would
        # otherwise stop every plan, or point `state migrate` at a database of its choosing.
        body = seal.unseal(RECORD_FILE, raw, data_dir.parent) if raw is not None else None
        if body is None:
            return None
        try:
            document = json.loads(body)
            record = cls(**{key: document[key] for key in ("type", "location", "workspace", "at")})
        except (ValueError, KeyError, TypeError):
            raise StateError(f"{path} is damaged; remove it if the state is where the configuration says") from None
        if record.type not in ("local", "postgres") or not all(isinstance(v, str) for v in vars(record).values()):
            raise StateError(f"{path} is damaged; remove it if the state is where the configuration says")
        return record

    def write(self, data_dir: Path) -> None:
        document = {"type": self.type, "location": self.location, "workspace": self.workspace, "at": self.at}
        blob = seal.seal(RECORD_FILE, json.dumps(document, indent=2).encode() + b"\n", data_dir.parent)
        if blob is None:
            return  # without this user's secret a record would never be believed
        atomic.ensure_dir(data_dir, 0o700, data_dir.parent)
        atomic.write_atomic(data_dir / RECORD_FILE, blob, 0o600, data_dir.parent)


@dataclass(frozen=True)
class Migrated:
    state: State
    already_there: bool  # the destination held this very state (an earlier migration)


def migrate(
    source: StateStore,
    destination: StateStore,
    *,
    lock_timeout: float,
    approve: Callable[[State, State | None], bool],
    retire: Callable[[], None],
) -> Migrated:
    """Copy the state from `source` to `destination` under both locks, then `retire` the source.

    The destination must be empty, or hold an older serial of the same lineage (a copy left by
    an earlier migration); any other state there is never overwritten. `approve` sees the state
    and what the destination holds, and may stop the migration.
    """
    if source.describe() == destination.describe():
        raise StateError(f"the state is already in {destination.describe()}; there is nothing to migrate")
    source_lock = source.lock("state migrate", lock_timeout)
    try:
        destination_lock = destination.lock("state migrate", lock_timeout)
        try:
            state = source.read()
            if state is None:
                raise StateError(f"there is no state in {source.describe()} to migrate")
            existing = destination.read()
            same = existing is not None and (existing.lineage, existing.serial) == (state.lineage, state.serial)
            if existing is not None and not same and (existing.lineage != state.lineage or existing.serial > state.serial):
                raise StateError(
                    f"{destination.describe()} already holds a state (lineage {existing.lineage}, serial "
                    f"{existing.serial}); it is not overwritten with the state of {source.describe()} (lineage "
                    f"{state.lineage}, serial {state.serial}). Move that state away first if it is not needed"
                )
            if not approve(state, existing):
                raise StateError("Migration cancelled.")
            if not same:
                destination.write(state)  # the same document: lineage and serial kept
            retire()
            return Migrated(state, already_there=same)
        finally:
            destination.unlock(destination_lock.id)
    finally:
        source.unlock(source_lock.id)


def retire_local(data_dir: Path) -> None:
    """Take the local state out of use once it lives elsewhere: renamed, so it can be recovered."""
    path = data_dir / "state.json"
    try:
        atomic.rename(path, data_dir / f"state.json{RETIRED_SUFFIX}", data_dir.parent)
    except FileNotFoundError:
        return


def record_migration(data_dir: Path, type_: str, location: str, workspace: str) -> None:
    MigrationRecord(type=type_, location=location, workspace=workspace, at=now_iso()).write(data_dir)


def forget_migration(data_dir: Path) -> None:
    atomic.remove(data_dir / RECORD_FILE, data_dir.parent)
