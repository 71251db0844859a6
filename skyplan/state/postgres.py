"""The PostgreSQL state store: one row per workspace, locked with a session advisory lock.

The store keeps one connection for its whole life, and that connection *is* the lock: the
advisory lock belongs to its server session, so the server drops the lock the moment the
client dies or its connection is cut, and a run whose session was ended by force-unlock cannot
write any more (its next statement fails; the store never reconnects while it holds a lock).
Lock information (LockInfo plus the backend pid of the session that holds the advisory lock)
sits in a table so that a waiting run can name the holder. It is advisory: whether the lock is
held is decided by the server's lock table (pg_locks), never by that row alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from typing import NamedTuple

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from skyplan import redact
from skyplan.errors import LockError, StateError
from skyplan.state.codec import parse_state
from skyplan.state.model import STATE_FORMAT_VERSION, State
from skyplan.state.store import LockInfo, StateStore, check_successor, lock_error
from skyplan.state.urls import URLProblem, check_url, display_url, url_secrets

STATES_TABLE = "skyplan_states"
LOCKS_TABLE = "skyplan_locks"

_CREATE_TABLES = f"""
CREATE TABLE IF NOT EXISTS {STATES_TABLE} (
    workspace  text PRIMARY KEY,
    serial     bigint NOT NULL,
    lineage    text NOT NULL,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {LOCKS_TABLE} (
    workspace text PRIMARY KEY,
    info      jsonb NOT NULL,
    pid       integer NOT NULL,
    locked_at timestamptz NOT NULL DEFAULT now()
);
"""

# The server's own record of who holds the advisory lock (a bigint key shows as two oids).
_HOLDER_FILTER = """
locktype = 'advisory' AND granted
AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
AND classid = %(high)s::bigint::oid AND objid = %(low)s::bigint::oid AND objsubid = 1
"""

_POLL_SECONDS = 0.1
_CONNECT_TIMEOUT_SECONDS = 10
_TERMINATE_WAIT_MS = 5000


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (Python's hash() changes between processes)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"skyplan").digest()
    return int.from_bytes(digest, "big", signed=True)


_SCHEMA_KEY = advisory_key("schema")


class _Recorded(NamedTuple):
    """A row of the locks table: who said they took the lock, from which session."""

    lock_id: str
    info: LockInfo | None  # None if this skyplan cannot read it (written by a newer one)
    pid: int


class _LockStatus(NamedTuple):
    holder_pid: int | None  # the session that holds the advisory lock, per the server
    recorded: _Recorded | None

    @property
    def current(self) -> _Recorded | None:
        """The record of the live holder; a record from any other session is left over."""
        if self.recorded is not None and self.holder_pid is not None and self.recorded.pid == self.holder_pid:
            return self.recorded
        return None


class PostgresStateStore(StateStore):
    """The state of `workspace` in the database at `url`; connects on first use."""

    def __init__(self, url: str, workspace: str = "default"):
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in ("postgresql", "postgres"):
            raise StateError("the postgres backend needs a URL of the form postgresql://user@host:port/database")
        try:
            check_url(url)
        except URLProblem as exc:
            raise StateError(f"the postgres backend URL is not valid: {exc}") from None
        self.url = url
        self.workspace = workspace
        self.key = advisory_key(f"state:{workspace}")
        self._secrets = url_secrets(url)
        redact.remember(*self._secrets)
        self._where = f'{display_url(url)} (workspace "{workspace}")'
        self._conn: psycopg.Connection | None = None
        self._lock_info: LockInfo | None = None

    def describe(self) -> str:
        return self._where

    # -- connection -----------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if self._lock_info is not None:
            # Reconnecting would carry on without the lock that this run believes it holds.
            raise self._lost_lock()
        try:
            params = conninfo_to_dict(self.url)
            params.setdefault("connect_timeout", str(_CONNECT_TIMEOUT_SECONDS))
            params.setdefault("fallback_application_name", "skyplan")
            conn = psycopg.connect(autocommit=True, **params)
        except psycopg.Error as exc:
            raise StateError(f"cannot connect to the state backend {self._where}: {self._clean(exc)}") from None
        try:
            _ensure_tables(conn)
        except psycopg.Error as exc:
            conn.close()
            raise StateError(f"cannot create the state tables in {self._where}: {self._clean(exc)}") from None
        self._conn = conn
        return conn

    @contextlib.contextmanager
    def _database(self, action: str) -> Iterator[psycopg.Connection]:
        """The connection, with every database error turned into one clear StateError."""
        conn = self._connection()
        try:
            yield conn
        except psycopg.Error as exc:
            if self._lock_info is not None and conn.broken:
                raise self._lost_lock(self._clean(exc)) from None
            raise StateError(f"cannot {action} {self._where}: {self._clean(exc)}") from None

    def _lost_lock(self, reason: str = "") -> LockError:
        assert self._lock_info is not None
        because = f" ({reason})" if reason else ""
        return LockError(
            f"lost the connection to {self._where}{because}, and with it lock {self._lock_info.id}; "
            "the server released the lock (was it force-unlocked?), and this run can no longer write the state"
        )

    def _clean(self, exc: psycopg.Error) -> str:
        """The error on one line, without any piece of the password that the URL may carry.

        libpq and psycopg quote hosts, users and sometimes the whole URL in their messages.
        """
        diag = getattr(exc, "diag", None)
        text = (diag.message_primary if diag is not None else None) or str(exc)
        return redact.mask(" ".join(text.split()), self._secrets)

    # -- read / write ---------------------------------------------------------------------------

    def read(self) -> State | None:
        with self._database("read the state from") as conn:
            row = conn.execute(
                f"SELECT state::text FROM {STATES_TABLE} WHERE workspace = %s", [self.workspace]
            ).fetchone()
        self.read_digest = None
        if row is None:
            return None
        state = self._parse(row[0])
        self.read_digest = hashlib.sha256(row[0].encode("utf-8", "surrogatepass")).hexdigest()
        return state

    def _parse(self, text: str) -> State:
        return parse_state(text.encode(), self._where, what="state")

    def write(self, state: State) -> None:
        document = Jsonb(state.model_dump(mode="json"))
        with self._database("write the state to") as conn, conn.transaction():
            # FOR UPDATE holds the row until commit, so two writers cannot both pass the check.
            current = self._current_for_update(conn)
            if current is None:
                inserted = conn.execute(
                    f"INSERT INTO {STATES_TABLE} (workspace, serial, lineage, state) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (workspace) DO NOTHING",
                    [self.workspace, state.serial, state.lineage, document],
                )
                if inserted.rowcount == 1:
                    return
                current = self._current_for_update(conn)  # another writer created it meanwhile
                assert current is not None
            check_successor(*current, state, self._where)
            conn.execute(
                f"UPDATE {STATES_TABLE} SET serial = %s, lineage = %s, state = %s, updated_at = now() "
                "WHERE workspace = %s",
                [state.serial, state.lineage, document, self.workspace],
            )

    def _current_for_update(self, conn: psycopg.Connection) -> tuple[int, str] | None:
        row = conn.execute(
            f"SELECT serial, lineage, state->'version' FROM {STATES_TABLE} WHERE workspace = %s FOR UPDATE",
            [self.workspace],
        ).fetchone()
        if row is None:
            return None
        serial, lineage, version = row
        if not isinstance(version, int) or version > STATE_FORMAT_VERSION:
            # A state that this skyplan cannot read (newer, foreign) is never overwritten; the
            # full parse says what is wrong with it.
            text = conn.execute(f"SELECT state::text FROM {STATES_TABLE} WHERE workspace = %s", [self.workspace])
            self._parse(text.fetchone()[0])
        return serial, lineage

    # -- lock -----------------------------------------------------------------------------------

    def lock(self, operation: str, timeout: float) -> LockInfo:
        if self._lock_info is not None:
            # Advisory locks nest within a session; a second lock() here would always succeed.
            raise lock_error(self._where, self._lock_info, 0)
        info = LockInfo.new(operation, self._where)
        started = time.monotonic()
        deadline = started + timeout
        with self._database("lock the state in") as conn:
            while not self._try_lock(conn, info):
                if time.monotonic() >= deadline:
                    waited = round(time.monotonic() - started, 1) if timeout else 0
                    current = self._status(conn).current
                    # The holder records its info in the transaction that takes the lock, so
                    # for a moment the lock is visible and the info is not: give it that moment.
                    for _ in range(10):
                        if current is not None:
                            break
                        time.sleep(_POLL_SECONDS)
                        current = self._status(conn).current
                    raise lock_error(self._where, current.info if current else None, waited)
                time.sleep(_POLL_SECONDS)
        self._lock_info = info
        return info

    def _try_lock(self, conn: psycopg.Connection, info: LockInfo) -> bool:
        try:
            with conn.transaction():
                if not conn.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()[0]:
                    return False
                conn.execute(
                    f"INSERT INTO {LOCKS_TABLE} (workspace, info, pid) VALUES (%s, %s, pg_backend_pid()) "
                    "ON CONFLICT (workspace) DO UPDATE SET info = EXCLUDED.info, pid = EXCLUDED.pid, "
                    "locked_at = now()",
                    [self.workspace, Jsonb(info.model_dump())],
                )
        except psycopg.Error:
            # A session lock outlives a rolled-back transaction; ending the session drops it.
            conn.close()
            raise
        return True

    def _key_parts(self) -> dict[str, int]:
        return {"high": (self.key >> 32) & 0xFFFFFFFF, "low": self.key & 0xFFFFFFFF}

    def _status(self, conn: psycopg.Connection) -> _LockStatus:
        row = conn.execute(f"SELECT pid FROM pg_locks WHERE {_HOLDER_FILTER}", self._key_parts()).fetchone()
        holder_pid = row[0] if row else None
        row = conn.execute(
            f"SELECT info->>'id', info, pid FROM {LOCKS_TABLE} WHERE workspace = %s", [self.workspace]
        ).fetchone()
        if row is None:
            return _LockStatus(holder_pid, None)
        try:
            info = LockInfo.model_validate(row[1])
        except ValidationError:
            info = None
        return _LockStatus(holder_pid, _Recorded(row[0], info, row[2]))

    def unlock(self, lock_id: str) -> None:
        if self._lock_info is not None and self._lock_info.id == lock_id:
            self._release_own()
            return
        self._force_unlock(lock_id)

    def _release_own(self) -> None:
        conn, self._lock_info = self._conn, None
        if conn is None or conn.closed:
            return  # the session is gone, and the server released its lock with it
        try:
            with conn.transaction():
                conn.execute(
                    f"DELETE FROM {LOCKS_TABLE} WHERE workspace = %s AND pid = pg_backend_pid()", [self.workspace]
                )
                conn.execute("SELECT pg_advisory_unlock(%s)", [self.key])
        except psycopg.Error:
            # Ending the session is the other way to give the lock back; no need to fail the run.
            conn.close()

    def _force_unlock(self, lock_id: str) -> None:
        """Force-unlock on a shared server: a live holder's session is ended, which releases
        its lock and stops it from writing; a dead holder's left-over lock info is cleared."""
        with self._database("unlock the state in") as conn:
            status = self._status(conn)
            if status.recorded is None or status.recorded.lock_id != lock_id:
                if status.current is not None:
                    detail = f"; the current lock is {status.current.lock_id}"
                elif status.holder_pid is not None:
                    detail = f"; it is held by database session pid {status.holder_pid}, which recorded no lock ID"
                else:
                    detail = "; the state is not locked"
                raise LockError(f"no lock with ID {lock_id} on {self._where}{detail}")
            if status.current is not None:
                self._terminate(conn, status.current)
            conn.execute(
                f"DELETE FROM {LOCKS_TABLE} WHERE workspace = %s AND info->>'id' = %s", [self.workspace, lock_id]
            )

    def _terminate(self, conn: psycopg.Connection, holder: _Recorded) -> None:
        who = f"database session pid {holder.pid}" + (f", {holder.info.who}" if holder.info else "")
        try:
            # Only while that session still holds the lock: it may have finished meanwhile.
            row = conn.execute(
                f"SELECT pg_terminate_backend(pid, %(wait)s) FROM pg_locks WHERE {_HOLDER_FILTER} AND pid = %(pid)s",
                {**self._key_parts(), "pid": holder.pid, "wait": _TERMINATE_WAIT_MS},
            ).fetchone()
        except psycopg.errors.InsufficientPrivilege as exc:
            raise LockError(
                f"lock {holder.lock_id} is held by a running run ({who}) and this database role may not "
                f"end it: {self._clean(exc)}. Stop that run, or ask a database administrator to run "
                f"SELECT pg_terminate_backend({holder.pid})"
            ) from None
        if row is not None and not row[0]:
            raise LockError(
                f"{who} holding lock {holder.lock_id} did not end within {_TERMINATE_WAIT_MS // 1000}s; try again"
            )

    def close(self) -> None:
        if self._lock_info is not None:
            self._release_own()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _ensure_tables(conn: psycopg.Connection) -> None:
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL", [STATES_TABLE, LOCKS_TABLE]
    ).fetchone()[0]
    if exists:
        return  # also lets a role without CREATE rights use tables that an administrator made
    with conn.transaction():
        # Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog; serialise it.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_SCHEMA_KEY])
        conn.execute("SET LOCAL client_min_messages = warning")
        conn.execute(_CREATE_TABLES)
