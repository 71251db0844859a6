"""A private PostgreSQL server for the test session: started once on loopback, always stopped.

Use it from any test package: the root conftest loads this module as a plugin, so the
`postgres_server` and `postgres_url` fixtures are available everywhere. Tests that need it are
marked `postgres`; they fail (never skip) when the server cannot be started, because CI must run
them.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DEFAULT_BIN = "/usr/lib/postgresql/15/bin"
# A role that must log in with a password over TCP, for tests of authentication failures; every
# other role is trusted so that tests need no secrets.
PASSWORD_ROLE = "skyplan_password"
PASSWORD = "right-horse-battery"


@dataclass
class PostgresServer:
    root: Path
    bin_dir: Path
    port: int
    run_as: str | None  # the server refuses to run as root; then it runs as this user

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database, for tests that need tables not to exist yet; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    # -- lifecycle ------------------------------------------------------------------------------

    def _command(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def _checked(self, argv: list[str]) -> None:
        done = self._command(argv)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def init(self) -> None:
        self.data_dir.mkdir()
        self.socket_dir.mkdir()
        self.log_path.touch()
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            # The temporary folder is root's and 0700; the server's user must be able to enter it.
            self.root.chmod(0o755)
            for path in (self.data_dir, self.socket_dir, self.log_path):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._checked(
            [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--locale=C", "--no-sync"]
        )
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            # Durability is not under test; speed is welcome.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._checked(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-o", options,
             "-l", str(self.log_path), "-w", "-t", "30", "start"]
        )

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._command([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"])

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bin_dir() -> Path:
    bin_dir = Path(os.environ.get("SKYPLAN_TEST_PG_BIN", DEFAULT_BIN))
    missing = [name for name in ("initdb", "pg_ctl", "postgres") if not (bin_dir / name).is_file()]
    if missing:
        pytest.fail(
            f"PostgreSQL server binaries not found in {bin_dir} (missing: {', '.join(missing)}). "
            "Install PostgreSQL 15 (apt-get install postgresql-15) or set SKYPLAN_TEST_PG_BIN to the "
            "folder holding initdb and pg_ctl. These tests must run in CI; they are never skipped.",
            pytrace=False,
        )
    return bin_dir


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root, but there is no 'postgres' user to run the server as", pytrace=False)
    return "postgres"


def start_server() -> PostgresServer:
    bin_dir, run_as = _bin_dir(), _run_as()
    root = Path(tempfile.mkdtemp(prefix="skyplan-pg-"))
    server = PostgresServer(root, bin_dir, _free_port(), run_as)
    try:
        server.init()
        for attempt in range(3):
            try:
                server.start()
                break
            except RuntimeError:
                # Another process may have taken the port since it was found free.
                if attempt == 2:
                    raise
                server.port = _free_port()
        import psycopg

        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
    except BaseException as exc:
        log = server.log()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        if isinstance(exc, RuntimeError):
            pytest.fail(f"could not start PostgreSQL for the tests: {exc}\n{log}", pytrace=False)
        raise
    return server


def stop_server(server: PostgresServer) -> None:
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_server()
    # The fixture's teardown stops it; atexit covers a session that dies before teardown runs.
    atexit.register(stop_server, server)
    try:
        yield server
    finally:
        stop_server(server)
        atexit.unregister(stop_server)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url()
