"""Every state store behind one fixture, so that one conformance suite runs against each."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from skyplan.state.model import ResourceState, ResourceStatus, State
from skyplan.state.store import LockInfo, StateStore

LOCK_HOLDER = Path(__file__).with_name("lock_holder.py")


@dataclass
class StoreKit:
    """How a test reaches one stored state: clients of it, and the raw document behind them."""

    kind: str
    spec: dict  # for lock_holder.py
    _new: Callable[[], StateStore]
    plant: Callable[[dict], None]  # store a raw document, bypassing every check
    stored: Callable[[], dict | None]  # the raw document as stored
    _opened: list[StateStore] = field(default_factory=list)

    def new(self) -> StateStore:
        """Another client of the same state, as another run would open it."""
        store = self._new()
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


class LockHolder:
    """A lock taken and held by another OS process (see lock_holder.py)."""

    def __init__(self, spec: dict):
        self.process = subprocess.Popen(
            [sys.executable, str(LOCK_HOLDER), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(10)
            raise AssertionError(f"lock holder failed to take the lock: {self.process.stderr.read()}")
        self.info = LockInfo.model_validate_json(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self) -> None:
        self.process.stdin.write("release\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup of any kind runs in the holder
        self.process.wait(10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()


@pytest.fixture
def lock_holder(store_kit: StoreKit) -> Iterator[Callable[[], LockHolder]]:
    holders: list[LockHolder] = []

    def start() -> LockHolder:
        holder = LockHolder(store_kit.spec)
        holders.append(holder)
        return holder

    yield start
    for holder in holders:
        holder.close()


def local_kit(tmp_path: Path) -> StoreKit:
    from skyplan.state.local import FileStateStore

    data_dir = tmp_path / ".skyplan"
    state_path = data_dir / "state.json"

    def plant(document: dict) -> None:
        data_dir.mkdir(mode=0o700, exist_ok=True)
        state_path.write_text(json.dumps(document))

    def stored() -> dict | None:
        return json.loads(state_path.read_text()) if state_path.exists() else None

    return StoreKit("local", {"kind": "local", "data_dir": str(data_dir)}, lambda: FileStateStore(data_dir), plant, stored)


def postgres_kit(url: str) -> StoreKit:
    import psycopg
    from psycopg.types.json import Jsonb

    from skyplan.state.postgres import STATES_TABLE, PostgresStateStore

    workspace = f"test-{uuid.uuid4()}"

    def plant(document: dict) -> None:
        creator = PostgresStateStore(url, workspace)
        creator.read()  # its first use creates the tables
        creator.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f"INSERT INTO {STATES_TABLE} (workspace, serial, lineage, state) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (workspace) DO UPDATE SET serial = EXCLUDED.serial, lineage = EXCLUDED.lineage, "
                "state = EXCLUDED.state",
                [workspace, document.get("serial", 0), str(document.get("lineage", "")), Jsonb(document)],
            )

    def stored() -> dict | None:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = %s", [workspace]).fetchone()
        return row[0] if row else None

    spec = {"kind": "postgres", "url": url, "workspace": workspace}
    return StoreKit("postgres", spec, lambda: PostgresStateStore(url, workspace), plant, stored)


@pytest.fixture(params=["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreKit]:
    if request.param == "local":
        kit = local_kit(tmp_path)
    else:
        kit = postgres_kit(request.getfixturevalue("postgres_url"))
    yield kit
    kit.close_all()


def sample_state(serial: int = 1, lineage: str | None = None) -> State:
    """A state with one resource, so that round trips cover more than the header."""
    cluster = ResourceState(
        type="cluster",
        name="us-west",
        attributes={"endpoint": "203.0.113.10:51820", "subnets": ["10.10.0.0/16"]},
        computed={"address": "100.96.0.1", "public_key": "x" * 43 + "="},
        status=ResourceStatus(since="2025-01-01T00:00:00Z"),
        created="2025-01-01T00:00:00Z",
    )
    state = State.new() if lineage is None else State(lineage=lineage)
    return state.model_copy(update={"serial": serial, "resources": [cluster]})
