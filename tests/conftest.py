"""Fixtures shared by every test package: workspaces on disk and the CLIs through CliRunner."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.workspaces import BASIC

OLD_WORKSPACE = Path(__file__).parent / "fixtures" / "workspace-0.1.0"

# The private PostgreSQL server (fixtures `postgres_server`, `postgres_url`), started at most
# once per session and only when a test asks for it.
pytest_plugins = ["tests.postgres_server"]


@pytest.fixture(autouse=True)
def _secrets_met_stay_in_their_test():
    """Each CLI run is a process of its own, whose crash report masks the secrets it met (a
    database password). Here every test shares one process: what one test met is forgotten
    before the next, or it would mask pieces ("pass") of another test's text."""
    from skyplan import redact

    yield
    redact._remembered.clear()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace folder that is also the current directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    monkeypatch.delenv("SKYPLAN_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return tmp_path


@pytest.fixture
def basic(workspace: Path) -> Path:
    """A workspace holding the three-cluster, two-link configuration."""
    (workspace / "links.yaml").write_text(BASIC)
    return workspace


@pytest.fixture
def applied(basic: Path, skyplan) -> Path:
    """The basic workspace, applied (a module may give `applied` a meaning of its own)."""
    assert skyplan("apply", "--auto-approve").exit_code == 0
    return basic


@pytest.fixture
def old_workspace(workspace: Path) -> Path:
    """A copy of the workspace skyplan 0.1.0 left (tests/fixtures/workspace-0.1.0), as the current folder."""
    shutil.copytree(OLD_WORKSPACE, workspace, dirs_exist_ok=True)
    # git keeps no modes: give the copy the ones 0.1.0 wrote.
    (workspace / ".skyplan").chmod(0o700)
    (workspace / ".skyplan" / "keys").chmod(0o700)
    for secret in [*(workspace / ".skyplan" / "keys").iterdir(), *(workspace / "wireguard").glob("*/*.conf")]:
        secret.chmod(0o600)
    (workspace / ".skyplan" / "state.json").chmod(0o600)
    return workspace


def _invoker(main):
    """Run a CLI in this process; exceptions propagate, so a bug fails the test with its traceback."""

    def run(*args: str, input: str | None = None, env: dict | None = None):
        return CliRunner().invoke(main, list(args), input=input, env=env, catch_exceptions=False)

    return run


@pytest.fixture
def skyplan():
    from skyplan.cli.skyplan_cmd import main

    return _invoker(main)


@pytest.fixture
def skyctl():
    from skyplan.cli.skyctl_cmd import main

    return _invoker(main)


def pytest_configure(config):
    # Colour codes would make output assertions depend on the terminal running the tests.
    os.environ.setdefault("NO_COLOR", "1")
    # The per-user secret that seals caches (skyplan/seal.py) lives in a folder of the test
    # session, never in the home of whoever runs the tests; subprocesses inherit it too.
    import tempfile

    config._skyplan_user_cache = tempfile.mkdtemp(prefix="skyplan-test-user-cache-")
    os.environ["XDG_CACHE_HOME"] = config._skyplan_user_cache


def pytest_unconfigure(config):
    import shutil

    folder = getattr(config, "_skyplan_user_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
