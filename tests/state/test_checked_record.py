"""The sealed record of a state that passed every check (state/checked.py): an unchanged state is
not checked again, and nothing else gets past the checks because of it.

Written as the attacker would: the state edited after a command recorded it as checked (same
serial, same length), a record copied in from another workspace, a record forged without the
user's secret. Each test asserts that the state is refused exactly as it is with no record.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from skyplan.state import checked
from tests.state.test_hostile_state import assert_refused, hostile_cluster

RECORD = Path(".skyplan/cache") / checked.RECORD


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A folder outside the workspace, where a hostile entry would have files written."""
    return tmp_path_factory.mktemp("outside")


@pytest.fixture
def checks(monkeypatch) -> list[int]:
    """How many times the full checks ran."""
    from skyplan import workspace

    calls: list[int] = []
    original = workspace.Workspace._check

    def counted(self, state):
        calls.append(1)
        return original(self, state)

    monkeypatch.setattr(workspace.Workspace, "_check", counted)
    return calls


def test_an_unchanged_state_is_checked_once_and_shown_the_same(applied: Path, skyctl, checks) -> None:
    first = skyctl("get", "link")
    assert first.exit_code == 0 and RECORD.exists()
    second = skyctl("get", "link", "-o", "json")
    third = skyctl("get", "link")
    assert checks == [1], "the second and third reads of the same state are not checked again"
    assert second.exit_code == 0 and json.loads(second.output)["items"]
    assert without_age(third.output) == without_age(first.output)
    assert RECORD.stat().st_mode & 0o777 == 0o600


def without_age(table: str) -> list[list[str]]:
    return [line.split()[:-1] for line in table.splitlines()]  # AGE may tick over between two runs


def tamper(workspace: Path) -> None:
    """A hostile cluster written into the state, keeping its serial, as an attacker would."""
    path = workspace / ".skyplan" / "state.json"
    document = json.loads(path.read_text())
    document["resources"].append(hostile_cluster("a/b"))
    path.write_text(json.dumps(document, indent=2) + "\n")


def refusal(workspace: Path, skyctl) -> str:
    result = skyctl("get", "link")
    assert_refused(result, str(workspace / ".skyplan" / "state.json"), "cluster.a/b")
    return result.output


def test_a_state_changed_after_it_was_recorded_as_checked_is_refused_as_without_the_record(applied: Path, skyctl) -> None:
    assert skyctl("get", "link").exit_code == 0 and RECORD.exists()
    tamper(applied)
    with_record = refusal(applied, skyctl)
    RECORD.unlink()
    assert refusal(applied, skyctl) == with_record


def test_a_record_copied_from_a_workspace_where_the_state_passed_is_not_believed(applied: Path, skyctl) -> None:
    assert skyctl("get", "link").exit_code == 0
    good = RECORD.read_bytes()
    tamper(applied)
    refusal(applied, skyctl)
    # The attacker puts back the record made for the state before the edit: it names that state.
    RECORD.write_bytes(good)
    refusal(applied, skyctl)


def test_a_record_forged_without_the_users_secret_is_not_believed(applied: Path, skyctl, checks) -> None:
    from skyplan import seal

    tamper(applied)
    # Everything the key is made of is public to someone who can read the workspace; the seal is not.
    from skyplan.workspace import open_workspace

    ws = open_workspace(applied / "links.yaml", resources=False)
    state_digest = hashlib.sha256((applied / ".skyplan/state.json").read_bytes()).hexdigest()
    key = checked.verdict_key(state_digest, ws.provider, ws.paths.root)
    ws.close()
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_bytes(b"skyplan-sealed-1 " + b"0" * 64 + b"\n" + key.encode())
    refusal(applied, skyctl)
    # Sealed with another secret (another user's, or one the attacker made): not believed either.
    mac = seal._mac(b"\x01" * seal.SECRET_BYTES, "state-checked", key.encode())
    RECORD.write_bytes(b"skyplan-sealed-1 " + mac.encode() + b"\n" + key.encode())
    refusal(applied, skyctl)
    assert checks == [1, 1], "each refused read ran the full checks"


def test_other_settings_check_the_same_state_again(applied: Path, skyctl, checks) -> None:
    assert skyctl("get", "link").exit_code == 0
    config = applied / "links.yaml"
    config.write_text(config.read_text().replace("provider:\n", "provider:\n  persistent_keepalive: 30\n", 1))
    assert skyctl("get", "link").exit_code == 0
    assert checks == [1, 1]


def test_an_edited_source_file_checks_the_same_state_again(applied: Path, skyctl, checks) -> None:
    import skyplan.state.checks as module

    assert skyctl("get", "link").exit_code == 0
    path = Path(module.__file__)
    info = path.stat()
    try:
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
        assert skyctl("get", "link").exit_code == 0
    finally:
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert checks == [1, 1]


def test_a_planted_symlink_for_the_record_is_neither_read_nor_written_through(applied: Path, skyctl, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (applied / ".skyplan" / "cache").rename(elsewhere / "cache")
    os.symlink(elsewhere / "cache", applied / ".skyplan" / "cache")
    before = sorted(p.name for p in (elsewhere / "cache").iterdir())
    skyctl("get", "link")
    assert sorted(p.name for p in (elsewhere / "cache").iterdir()) == before


@pytest.mark.postgres
def test_a_row_edited_in_postgresql_after_it_was_recorded_as_checked_is_refused(workspace, skyplan, skyctl, postgres_url, outside, checks, monkeypatch):
    from tests.state.test_hostile_state import _edit_row, _postgres_workspace, hostile_entry

    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    name = _postgres_workspace(workspace, postgres_url)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert skyctl("get", "link").exit_code == 0 and skyctl("get", "link").exit_code == 0
    assert RECORD.exists() and len(checks) == 1, "the first get checks the state; the second trusts the record"
    entry = hostile_entry("output_dir outside", outside)
    _edit_row(postgres_url, name, lambda document: document["resources"].append(entry))
    where = f'{postgres_url} (workspace "{name}")'
    for _ in range(2):
        assert_refused(skyctl("get", "link"), where, f"cluster.{entry['name']}")
        assert_refused(skyplan("plan"), where, f"cluster.{entry['name']}")


def test_what_a_killed_run_left_half_written_in_the_cache_is_removed_by_the_next_locked_command(applied: Path, skyplan, skyctl) -> None:
    assert skyctl("get", "link").exit_code == 0
    cache = applied / ".skyplan" / "cache"
    # As atomic.write_atomic names its temporary files, killed before the rename.
    left = [cache / ".state-checked.json.1a2b3c4d.tmp", cache / ".settings.json.5e6f7a8b.tmp"]
    for path in left:
        path.write_bytes(b"half")
    assert skyctl("get", "link").exit_code == 0  # takes no lock: leaves what it did not write alone
    assert all(path.exists() for path in left)
    assert skyplan("plan").exit_code == 0
    assert not list(applied.rglob("*.tmp"))


def test_another_jinja2_checks_the_same_state_again(applied: Path, skyctl, checks, monkeypatch) -> None:
    # Hook templates in a state are judged by parsing them with jinja2: another version may judge
    # them otherwise, as other skyplan code would.
    import importlib.util

    assert skyctl("get", "link").exit_code == 0
    spec = importlib.util.find_spec("jinja2")
    assert spec is not None and spec.origin
    info = os.stat(spec.origin)
    try:
        os.utime(spec.origin, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
        assert skyctl("get", "link").exit_code == 0
    finally:
        os.utime(spec.origin, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert checks == [1, 1]
