"""`skyplan import` into a PostgreSQL backend ($SKYPLAN_BACKEND): the state goes where the workspace's is."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from skyplan.state.postgres import STATES_TABLE

from .confs import write_hub_and_spoke

pytestmark = pytest.mark.postgres


@pytest.fixture
def backend(postgres_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SKYPLAN_BACKEND", postgres_url)
    yield postgres_url
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {STATES_TABLE} WHERE workspace = 'default'")


def _stored(url: str) -> dict | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = 'default'").fetchone()
    return row[0] if row else None


def test_import_writes_the_state_into_the_backend_and_plan_adds_nothing(skyplan, workspace: Path, backend: str) -> None:
    files = write_hub_and_spoke(workspace / "etc")
    result = skyplan("import", *map(str, files.files), "--auto-approve", env={"SKYPLAN_BACKEND": backend})
    assert result.exit_code == 0, result.output
    stored = _stored(backend)
    assert stored is not None and stored["serial"] == 1 and len(stored["resources"]) == 7
    assert not (workspace / ".skyplan" / "state.json").exists()
    for secret in [*files.private.values(), files.preshared]:
        assert secret not in json.dumps(stored)
    plan = json.loads(skyplan("plan", "--json", env={"SKYPLAN_BACKEND": backend}).output)
    assert plan["summary"]["add"] == 0 and plan["summary"]["destroy"] == 0


def test_a_backend_state_that_holds_resources_is_never_added_to(skyplan, workspace: Path, backend: str) -> None:
    files = write_hub_and_spoke(workspace / "etc")
    assert skyplan("import", *map(str, files.files), "--auto-approve", env={"SKYPLAN_BACKEND": backend}).exit_code == 0
    before = _stored(backend)
    (workspace / "links.yaml").rename(workspace / "imported.yaml")
    result = skyplan("import", *map(str, files.files), "--auto-approve", env={"SKYPLAN_BACKEND": backend})
    assert result.exit_code == 1
    assert "import starts a workspace and never adds to one" in result.output
    assert _stored(backend) == before
    assert not (workspace / "links.yaml").exists()
