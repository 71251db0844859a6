"""`skyplan` against each state backend: where the state goes, and concurrent runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from skyplan.cli.skyplan_cmd import main
from skyplan.state.postgres import STATES_TABLE

SKYPLAN = Path(sys.executable).with_name("skyplan")

CONFIG = """\
version: 1
provider:
  name: wireguard
  on_change: {on_change}
{backend}clusters:
  - name: us-west
    endpoint: 203.0.113.10:51820
    subnets: [10.10.0.0/16]
  - name: eu-central
    endpoint: 198.51.100.20:51820
    subnets: [10.20.0.0/16]
links:
  - name: us-eu
    source: us-west
    target: eu-central
"""


def write_config(folder: Path, backend: dict | None = None, on_change: list[str] | None = None) -> Path:
    block = f"backend: {json.dumps(backend)}\n" if backend else ""
    path = folder / "links.yaml"
    path.write_text(CONFIG.format(backend=block, on_change=json.dumps(on_change or ["true"])))
    return path


def stored_state(url: str, workspace: str) -> dict | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = %s", [workspace]).fetchone()
    return row[0] if row else None


@pytest.fixture(autouse=True)
def no_backend_from_environment(monkeypatch):
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.mark.postgres
def test_apply_and_plan_keep_state_in_postgres(tmp_path, monkeypatch, postgres_url):
    workspace = f"cli-{uuid.uuid4()}"
    write_config(tmp_path, backend={"type": "postgres", "url": postgres_url, "workspace": workspace})
    monkeypatch.chdir(tmp_path)

    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in applied.stdout

    planned = run("plan")
    assert planned.exit_code == 0, planned.output
    assert "No changes. Links match the configuration." in planned.stdout

    state = stored_state(postgres_url, workspace)
    assert state is not None
    assert sorted(f"{r['type']}.{r['name']}" for r in state["resources"]) == [
        "cluster.eu-central", "cluster.us-west", "link.us-eu"
    ]
    assert not (tmp_path / ".skyplan" / "state.json").exists()


@pytest.mark.postgres
def test_backend_from_environment_variable(tmp_path, monkeypatch, postgres_server):
    url = postgres_server.create_database()  # the workspace is "default": keep it to itself
    write_config(tmp_path)
    monkeypatch.chdir(tmp_path)

    applied = run("apply", "--auto-approve", env={"SKYPLAN_BACKEND": url})
    assert applied.exit_code == 0, applied.output
    planned = run("plan", env={"SKYPLAN_BACKEND": url})
    assert "No changes. Links match the configuration." in planned.stdout

    assert len(stored_state(url, "default")["resources"]) == 3
    assert not (tmp_path / ".skyplan" / "state.json").exists()


@pytest.mark.postgres
def test_unreachable_backend_is_one_clear_line(tmp_path, monkeypatch):
    write_config(tmp_path, backend={"type": "postgres", "url": "postgresql://sky:hunter2@127.0.0.1:1/sky"})
    monkeypatch.chdir(tmp_path)
    result = run("plan")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot connect to the state backend postgresql://sky@127.0.0.1:1/sky")
    assert result.stderr.count("\n") == 1
    assert "hunter2" not in result.output


def test_corrupt_local_state_stops_apply_and_is_left_alone(tmp_path, monkeypatch):
    write_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".skyplan").mkdir(mode=0o700)
    truncated = b'{"version": 1, "serial": 3, "lineage": "l", "resources": ['
    (tmp_path / ".skyplan" / "state.json").write_bytes(truncated)

    result = run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "is not valid JSON" in result.stderr
    assert "Traceback" not in result.output
    assert (tmp_path / ".skyplan" / "state.json").read_bytes() == truncated
    assert not (tmp_path / "wireguard").exists()


@pytest.mark.parametrize("backend", ["local", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_applies_one_wins_one_fails_cleanly(tmp_path, request, backend):
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        workspace = f"race-{uuid.uuid4()}"
        spec = {"type": "postgres", "url": url, "workspace": workspace}
    else:
        spec = None
    # The hook keeps the winner inside its locked run long enough for the other to collide.
    write_config(tmp_path, backend=spec, on_change=["sleep", "1"])

    environment = {k: v for k, v in os.environ.items() if k != "SKYPLAN_BACKEND"} | {"NO_COLOR": "1"}
    runs = [
        subprocess.Popen(
            [str(SKYPLAN), "apply", "--auto-approve"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in runs]
    codes = [p.returncode for p in runs]
    assert sorted(codes) == [0, 1], outputs
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)

    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in outputs[winner][0]
    loser_err = outputs[loser][1]
    assert loser_err.startswith("Error: the state at ")
    assert "is locked" in loser_err
    assert f"(pid {runs[winner].pid})" in loser_err  # names the holder
    assert loser_err.count("\n") == 1 and "Traceback" not in loser_err
    assert "will be created" not in outputs[loser][0]  # it stopped before planning

    after = subprocess.run(
        [str(SKYPLAN), "plan"], cwd=tmp_path, capture_output=True, text=True, env=environment, timeout=60, check=False
    )
    assert after.returncode == 0, after.stderr
    assert "No changes. Links match the configuration." in after.stdout
    if backend == "postgres":
        assert stored_state(url, workspace)["serial"] >= 1
        assert not (tmp_path / ".skyplan" / "state.json").exists()
    else:
        assert json.loads((tmp_path / ".skyplan" / "state.json").read_text())["serial"] >= 1
