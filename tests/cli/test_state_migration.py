"""`state migrate` and the empty-backend refusal, against the real PostgreSQL the suite starts;
and teammates sharing one PostgreSQL state with key files of their own."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from skyplan.state.postgres import STATES_TABLE
from skyplan_wireguard import keys
from tests.workspaces import BASIC

pytestmark = pytest.mark.postgres


def stored_row(url: str, workspace: str) -> dict | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = %s", [workspace]).fetchone()
    return row[0] if row else None


def with_backend(url: str, workspace: str) -> str:
    return BASIC.replace("clusters:\n", f"backend: {{type: postgres, url: '{url}', workspace: {workspace}}}\nclusters:\n", 1)


def snapshot(folder: Path) -> tuple[dict, dict]:
    """Every cluster's key and address, from the key files and the generated configs."""
    private = {p.stem: p.read_text() for p in (folder / ".skyplan/keys").iterdir()}
    configs = {p.parent.name: p.read_text() for p in (folder / "wireguard").glob("*/wgsky0.conf")}
    return private, configs


def test_migrate_local_to_postgres_and_back_keeps_keys_addresses_lineage_and_serial(basic, skyplan, postgres_url):
    name = f"migrate-{uuid.uuid4()}"
    assert skyplan("apply", "--auto-approve").exit_code == 0
    local = json.loads((basic / ".skyplan/state.json").read_text())
    before = snapshot(basic)

    # Adding a backend block must not plan "5 to add" over an empty table.
    (basic / "links.yaml").write_text(with_backend(postgres_url, name))
    refused = skyplan("plan")
    assert refused.exit_code == 1
    assert "is empty, but" in refused.stderr and "run `skyplan state migrate`" in refused.stderr
    assert "to add" not in refused.output
    assert stored_row(postgres_url, name) is None

    moved = skyplan("state", "migrate", "--auto-approve")
    assert moved.exit_code == 0, moved.output
    assert f"(lineage {local['lineage']}, serial {local['serial']})" in moved.output
    row = stored_row(postgres_url, name)
    assert (row["lineage"], row["serial"]) == (local["lineage"], local["serial"])
    assert row["resources"] == local["resources"]
    assert not (basic / ".skyplan/state.json").exists()  # one state for the workspace
    assert (basic / ".skyplan/state.json.migrated").exists()
    plan = skyplan("plan")
    assert plan.output == "No changes. Links match the configuration.\n", plan.output

    # The backend block goes again: the plan stops rather than starting from nothing.
    (basic / "links.yaml").write_text(BASIC)
    stranded = skyplan("plan")
    assert stranded.exit_code == 1
    assert f"was moved to {postgres_url}" in stranded.stderr and "state migrate" in stranded.stderr

    back = skyplan("state", "migrate", "--auto-approve")
    assert back.exit_code == 0, back.output
    returned = json.loads((basic / ".skyplan/state.json").read_text())
    assert (returned["lineage"], returned["serial"]) == (local["lineage"], local["serial"])
    assert returned["resources"] == local["resources"]
    assert not (basic / ".skyplan/migrated.json").exists()
    plan = skyplan("plan", "--detailed-exitcode")
    assert plan.exit_code == 0 and plan.output == "No changes. Links match the configuration.\n"
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert snapshot(basic) == before  # addresses and keys unchanged throughout


def test_migrate_never_overwrites_another_state(basic, skyplan, postgres_url):
    name = f"taken-{uuid.uuid4()}"
    assert skyplan("apply", "--auto-approve").exit_code == 0
    other = basic / "other"
    other.mkdir()
    (other / "links.yaml").write_text(with_backend(postgres_url, name))
    # Someone else's state in that workspace (another lineage).
    elsewhere = skyplan("apply", "--auto-approve", str(other / "links.yaml"))
    assert elsewhere.exit_code == 0, elsewhere.output
    theirs = stored_row(postgres_url, name)

    (basic / "links.yaml").write_text(with_backend(postgres_url, name))
    result = skyplan("state", "migrate", "--auto-approve")
    assert result.exit_code == 1
    assert "already holds a state" in result.stderr and "is not overwritten" in result.stderr
    assert stored_row(postgres_url, name) == theirs
    assert (basic / ".skyplan/state.json").exists()


def test_migrate_asks_and_without_a_terminal_needs_auto_approve(basic, skyplan, postgres_url, monkeypatch):
    name = f"ask-{uuid.uuid4()}"
    assert skyplan("apply", "--auto-approve").exit_code == 0
    (basic / "links.yaml").write_text(with_backend(postgres_url, name))
    result = skyplan("state", "migrate")
    assert result.exit_code == 1 and "pass --auto-approve" in result.stderr
    monkeypatch.setattr("skyplan.cli.common.stdin_is_terminal", lambda: True)
    declined = skyplan("state", "migrate", input="no\n")
    assert declined.exit_code == 1 and "Migration cancelled." in declined.stderr
    assert stored_row(postgres_url, name) is None
    assert (basic / ".skyplan/state.json").exists()
    accepted = skyplan("state", "migrate", input="yes\n")
    assert accepted.exit_code == 0, accepted.output
    assert stored_row(postgres_url, name) is not None


def test_a_teammate_with_keys_of_their_own_is_stopped_not_swapped_in(tmp_path, monkeypatch, skyplan, postgres_url):
    """Two machines, one PostgreSQL state: the second has key files of its own for the clusters."""
    name = f"team-{uuid.uuid4()}"
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    for folder in (alice, bob):
        folder.mkdir()
        (folder / "links.yaml").write_text(with_backend(postgres_url, name))
    monkeypatch.chdir(alice)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    shared = stored_row(postgres_url, name)

    # Bob has the generated configs (say, from CI) but keys of his own.
    shutil.copytree(alice / "wireguard", bob / "wireguard")
    (bob / ".skyplan/keys").mkdir(parents=True, mode=0o700)
    for cluster in ("us-west", "eu-central", "ap-south"):
        (bob / f".skyplan/keys/{cluster}.key").write_text(keys.generate() + "\n")
    monkeypatch.chdir(bob)
    for command in (("plan",), ("apply", "--auto-approve")):
        result = skyplan(*command)
        assert result.exit_code == 1
        for cluster in ("ap-south", "eu-central", "us-west"):
            assert f"cluster.{cluster}: key file .skyplan/keys/{cluster}.key holds public key" in result.stderr
        assert "updated in-place" not in result.output
    assert stored_row(postgres_url, name) == shared  # nobody's keys were swapped in the state


@pytest.mark.parametrize("plant", ["escapes", "symlink"])
def test_a_planted_migration_record_changes_nothing(basic, skyplan, plant, tmp_path):
    # `.skyplan/migrated.json` is read back on every run with the local backend, and a pull
    # request can add it: unsealed it is not believed (the plan goes on as if it were not there),
    # and behind a symlink it is not read at all.
    record = basic / ".skyplan/migrated.json"
    record.parent.mkdir()
    if plant == "escapes":
        forged = "x\n\x1b[32mSuccess! The configuration is valid.\x1b[0m"
        record.write_text(json.dumps({"type": "postgres", "location": forged, "workspace": "w", "at": "now"}))
    else:
        secret = tmp_path / "outside.json"
        secret.write_text(json.dumps({"type": "t", "location": "OUTSIDE-TEXT", "workspace": "w", "at": "now"}))
        record.symlink_to(secret)
    result = skyplan("plan")
    assert result.exit_code == (0 if plant == "escapes" else 1), result.output
    assert "\x1b" not in result.output and "\nSuccess!" not in result.output
    assert "OUTSIDE-TEXT" not in result.output and "state migrate" not in result.output
    if plant == "escapes":
        assert "Plan: 5 to add, 0 to change, 0 to destroy." in result.output
    assert not (basic / ".skyplan/state.json").exists() and not (basic / ".skyplan/keys").exists()
    assert not (basic / "wireguard").exists()