"""Where the PostgreSQL store differs from the others: tables, concurrency, sessions, URLs."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from skyplan.errors import LockError, StateError
from skyplan.state.postgres import LOCKS_TABLE, STATES_TABLE, PostgresStateStore, advisory_key
from skyplan.state.urls import display_url
from tests.postgres_server import PASSWORD, PASSWORD_ROLE

from .conftest import LockHolder, postgres_kit, sample_state

pytestmark = pytest.mark.postgres


@pytest.fixture
def kit(postgres_url):
    kit = postgres_kit(postgres_url)
    yield kit
    kit.close_all()


def query(url: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def test_state_is_one_row_per_workspace(kit, postgres_url):
    state = sample_state(serial=3)
    kit.new().write(state)
    other = PostgresStateStore(postgres_url, kit.spec["workspace"] + "-other")
    try:
        assert other.read() is None
    finally:
        other.close()
    rows = query(
        postgres_url,
        f"SELECT serial, lineage, state, updated_at FROM {STATES_TABLE} WHERE workspace = %s",
        [kit.spec["workspace"]],
    )
    assert len(rows) == 1
    serial, lineage, document, updated_at = rows[0]
    assert (serial, lineage) == (3, state.lineage)
    assert document == state.model_dump(mode="json")
    assert updated_at is not None


def test_concurrent_writers_cannot_both_succeed(kit):
    # No lock taken: the serial check itself must be atomic in the database.
    base = sample_state(serial=1)
    kit.new().write(base)
    writers = [kit.new() for _ in range(8)]
    for writer in writers:
        writer.read()  # connect before the race starts
    start = threading.Barrier(len(writers))
    outcomes: list[str] = []

    def write(store, n: int) -> None:
        start.wait()
        try:
            store.write(base.model_copy(update={"serial": 2, "resources": [], "skyplan_version": f"w{n}"}))
            outcomes.append("ok")
        except StateError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(w, n)) for n, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["ok"] + ["refused"] * 7
    assert kit.new().read().serial == 2


def test_tables_are_created_once_when_clients_race(postgres_server):
    url = postgres_server.create_database()
    start = threading.Barrier(8)
    errors: list[Exception] = []

    def first_use() -> None:
        store = PostgresStateStore(url, "race")
        start.wait()
        try:
            store.read()
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    tables = query(url, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'skyplan_%%' ORDER BY 1")
    assert tables == [(LOCKS_TABLE,), (STATES_TABLE,)]


def test_role_without_create_rights_uses_existing_tables(postgres_server):
    url = postgres_server.create_database()
    role = f"r_{uuid.uuid4().hex[:8]}"
    query(url, f"CREATE ROLE {role} LOGIN")
    limited_url = url.replace("postgres@", f"{role}@", 1)

    missing = PostgresStateStore(limited_url, "w")
    with pytest.raises(StateError, match="cannot create the state tables in .*permission denied for schema public"):
        missing.read()

    admin = PostgresStateStore(url, "w")
    admin.read()  # an administrator's first use creates the tables
    admin.close()
    query(url, f"GRANT SELECT, INSERT, UPDATE, DELETE ON {STATES_TABLE}, {LOCKS_TABLE} TO {role}")
    store = PostgresStateStore(limited_url, "w")
    try:
        info = store.lock("apply", timeout=0)
        store.write(sample_state(serial=1))
        assert store.read().serial == 1
        store.unlock(info.id)
    finally:
        store.close()


def test_workspaces_lock_independently(postgres_url):
    a = PostgresStateStore(postgres_url, f"a-{uuid.uuid4()}")
    b = PostgresStateStore(postgres_url, f"b-{uuid.uuid4()}")
    try:
        a.lock("apply", timeout=0)
        b.lock("apply", timeout=0)
    finally:
        a.close()
        b.close()


def test_lock_key_is_stable():
    # Runs of different skyplan versions must agree on the key, or they would not exclude each other.
    assert advisory_key("state:default") == advisory_key("state:default")
    assert advisory_key("state:default") == -7049028556904531345
    assert -(2**63) <= advisory_key("state:prod") < 2**63


def test_lock_twice_in_one_client_is_refused(kit):
    # Advisory locks nest within one session; a second lock() must not quietly succeed.
    store = kit.new()
    info = store.lock("apply", timeout=0)
    with pytest.raises(LockError, match=info.id):
        store.lock("apply", timeout=0)


def test_force_unlock_ends_a_live_holders_session(kit):
    holder = kit.new()
    info = holder.lock("apply", timeout=0)
    state = sample_state(serial=1)
    holder.write(state)

    kit.new().unlock(info.id)

    # The holder lost its session with its lock: it must not write as if it still held it.
    with pytest.raises(LockError, match=f"lost the connection .* lock {info.id}"):
        holder.write(state.model_copy(update={"serial": 2}))
    with pytest.raises(LockError, match="lost the connection"):
        holder.read()  # and it does not quietly reconnect
    assert kit.new().read() == state
    kit.new().lock("apply", timeout=0)
    holder.unlock(info.id)  # the holder's own cleanup does not fail: its lock is already gone


def test_force_unlock_ends_a_live_holder_in_another_process(kit):
    holder = LockHolder(kit.spec)
    try:
        kit.new().unlock(holder.info.id)
        kit.new().lock("apply", timeout=0)
        with pytest.raises(LockError, match="the state is not locked|the current lock is"):
            kit.new().unlock(holder.info.id)
    finally:
        holder.close()


def test_force_unlock_needs_the_right_to_end_the_session(postgres_server, kit):
    role = f"r_{uuid.uuid4().hex[:8]}"
    query(postgres_server.url(), f"CREATE ROLE {role} LOGIN")
    query(postgres_server.url(), f"GRANT SELECT, INSERT, UPDATE, DELETE ON {STATES_TABLE}, {LOCKS_TABLE} TO {role}")
    info = kit.new().lock("apply", timeout=0)  # held by the superuser
    limited = PostgresStateStore(postgres_server.url(user=role), kit.spec["workspace"])
    try:
        with pytest.raises(LockError, match="may not end it.*pg_terminate_backend"):
            limited.unlock(info.id)
    finally:
        limited.close()
    with pytest.raises(LockError, match=info.id):
        kit.new().lock("plan", timeout=0)


def test_stale_lock_info_does_not_name_a_new_holder(kit, postgres_url):
    holder = LockHolder(kit.spec)
    holder.kill()  # leaves its lock info behind
    holder.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        # A session that takes the advisory lock without recording who it is.
        conn.execute("SELECT pg_advisory_lock(%s)", [advisory_key(f"state:{kit.spec['workspace']}")])
        with pytest.raises(LockError) as caught:
            kit.new().lock("apply", timeout=0)
    assert holder.info.id not in str(caught.value)
    assert "holder unknown" in str(caught.value)


@pytest.mark.parametrize(
    "make_url",
    [
        lambda port: f"postgresql://{PASSWORD_ROLE}:wrong-{PASSWORD}@127.0.0.1:{port}/postgres",
        lambda port: f"postgresql://{PASSWORD_ROLE}@127.0.0.1:{port}/postgres?password=wrong-{PASSWORD}",
        lambda port: f"postgresql://u:wrong-{PASSWORD}@127.0.0.1:1/postgres",
        lambda port: f"postgresql://u:wrong%2D{PASSWORD}@127.0.0.1:{port}/postgres",
    ],
    ids=["bad-password", "bad-password-in-query", "refused", "encoded-password"],
)
def test_connection_errors_are_one_line_without_the_password(postgres_server, make_url):
    store = PostgresStateStore(make_url(postgres_server.port))
    with pytest.raises(StateError) as caught:
        store.read()
    message = str(caught.value)
    assert message.startswith("cannot connect to the state backend postgresql://")
    assert "\n" not in message
    assert PASSWORD not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"postgresql://u:wrong-{PASSWORD}@127.0.0.1:notaport/postgres", "a port is not a number"),
        (f"postgresql://u:wrong-{PASSWORD}@127.0.0.1/postgres?nonsense=1", "a query parameter is not a libpq connection parameter"),
    ],
    ids=["bad-port", "bad-option"],
)
def test_urls_that_libpq_cannot_use_are_refused_before_connecting(url, problem):
    with pytest.raises(StateError, match=f"^the postgres backend URL is not valid: {problem}") as caught:
        PostgresStateStore(url)
    assert PASSWORD not in str(caught.value) and "\n" not in str(caught.value)


def test_authentication_failure_says_so(postgres_server):
    store = PostgresStateStore(postgres_server.url(user=PASSWORD_ROLE, password="nope-nope"))
    with pytest.raises(StateError, match=f'password authentication failed for user "{PASSWORD_ROLE}"'):
        store.read()
    database = postgres_server.create_database().rsplit("/", 1)[1]
    ok = PostgresStateStore(postgres_server.url(database, user=PASSWORD_ROLE, password=PASSWORD))
    try:
        assert PASSWORD not in ok.describe()
        # Past authentication: this role may connect, but not create the tables.
        with pytest.raises(StateError, match="cannot create the state tables.*permission denied for schema public"):
            ok.read()
    finally:
        ok.close()


@pytest.mark.parametrize("url", ["mysql://u:secret@h/db", "host=h password=secret", ""])
def test_only_postgresql_urls_are_accepted(url):
    with pytest.raises(StateError, match="needs a URL of the form postgresql://") as caught:
        PostgresStateStore(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:s3cr%40t@db.example:5433/sky?sslmode=require&password=x",
         "postgresql://alice@db.example:5433/sky?sslmode=require"),
        ("postgresql:///sky?host=/var/run/postgresql&password=x", "postgresql:///sky?host=/var/run/postgresql"),
        ("postgres://db.example/sky", "postgres://db.example/sky"),
    ],
)
def test_display_url_hides_passwords(url, shown):
    assert display_url(url) == shown
