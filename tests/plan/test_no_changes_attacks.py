"""Attacks on the no-changes record (plan/unchanged.py) and the read of the refresh's check
(atomic.read_at/read_below, the WireGuard provider's `_local_files`): whatever changed after a
clean plan was recorded, a plan with the records shows exactly what a plan without them shows.

Written as the attacker or the hand editor would: template variables from the command line and
the environment, a state another writer edits in PostgreSQL, and, where the files are read, real
symlinks, FIFOs, folders, hard links and git-tracked keys planted with the content the records
were made of, so that only how a file is reached can tell them apart.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from skyplan.plan import unchanged
from skyplan.state import refreshed
from tests.workspaces import BASIC

CACHE = Path(".skyplan/cache")
RECORDS = (CACHE / unchanged.RECORD, CACHE / refreshed.RECORD)
CONFIG = Path("wireguard/us-west/wgsky0.conf")
KEY = Path(".skyplan/keys/us-west.key")


@pytest.fixture
def planned(monkeypatch) -> list[str]:
    """Each time the planner ran."""
    from skyplan.plan import planner

    calls: list[str] = []
    plan = planner.plan
    monkeypatch.setattr(planner, "plan", lambda *a, **k: calls.append("planner") or plan(*a, **k))
    return calls


def _shown(result) -> tuple[int, str]:
    return result.exit_code, re.sub(r"/tmp/\S+", "<tmp>", result.output)


def recorded_clean(skyplan, planned: list[str], *args: str, env: dict | None = None) -> None:
    """Two clean plans: the records are written, and the second is answered by them."""
    first = skyplan("plan", "--no-color", *args, env=env)
    assert first.exit_code == 0 and "No changes." in first.output, first.output
    assert all(record.exists() for record in RECORDS)
    planned.clear()
    assert skyplan("plan", "--no-color", *args, env=env).output == first.output
    assert planned == [], "the record is in use for this world"


def as_without_records(skyplan, *args: str, env: dict | None = None):
    """The plan with the records, checked to be the one without them; returned."""
    with_records = skyplan("plan", "--no-color", *args, env=env)
    for record in RECORDS:
        record.unlink(missing_ok=True)
    without = skyplan("plan", "--no-color", *args, env=env)
    assert _shown(with_records) == _shown(without), (with_records.output, without.output)
    return with_records


# -- inputs of the plan -------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("--compact",), ("--detailed-exitcode",)], ids=["plain", "compact", "detailed-exitcode"])
def test_each_way_of_showing_a_change_made_after_the_record_shows_it(applied: Path, skyplan, planned, args) -> None:
    recorded_clean(skyplan, planned, *args)
    config = applied / "links.yaml"
    config.write_text(config.read_text().replace("10.30.0.0/16", "10.31.0.0/16"))
    result = as_without_records(skyplan, *args)
    assert "1 to change" in result.output or "~ cluster.ap-south" in result.output, result.output
    assert result.exit_code == (2 if args == ("--detailed-exitcode",) else 0)

TEMPLATE = BASIC.replace("10.30.0.0/16", "{{ ap_subnet }}")


def test_a_template_variable_given_otherwise_is_planned_in_full(workspace: Path, skyplan, planned, monkeypatch) -> None:
    (workspace / "links.yaml.j2").write_text(TEMPLATE)
    (workspace / "vars.yaml").write_text("ap_subnet: 10.30.0.0/16\n")
    assert skyplan("apply", "links.yaml.j2", "--var", "ap_subnet=10.30.0.0/16", "--auto-approve").exit_code == 0
    recorded_clean(skyplan, planned, "links.yaml.j2", "--var", "ap_subnet=10.30.0.0/16")
    # The same text, rendered from a file of variables or the environment: still no changes.
    assert "No changes." in skyplan("plan", "links.yaml.j2", "--var-file", "vars.yaml").output
    # Another value, by --var, by a file and by the environment: the change is shown every time.
    for args, env in (
        (("--var", "ap_subnet=10.31.0.0/16"), None),
        (("--var-file", "other.yaml"), None),
        ((), {"SKYPLAN_VAR_ap_subnet": "10.31.0.0/16"}),
    ):
        (workspace / "other.yaml").write_text("ap_subnet: 10.31.0.0/16\n")
        result = as_without_records(skyplan, "links.yaml.j2", *args, env=env)
        assert "Plan: 0 to add, 1 to change, 0 to destroy." in result.output, result.output
        recorded_clean(skyplan, planned, "links.yaml.j2", "--var", "ap_subnet=10.30.0.0/16")


def test_the_same_state_under_another_workspace_folder_is_planned_in_full(applied: Path, skyplan, planned, tmp_path_factory, monkeypatch) -> None:
    recorded_clean(skyplan, planned)
    other = tmp_path_factory.mktemp("copy") / "ws"
    shutil.copytree(applied, other, symlinks=True)
    monkeypatch.chdir(other)
    planned.clear()
    result = skyplan("plan", "--no-color")
    assert "No changes." in result.output and planned == ["planner"], "a record of another folder was believed"


def test_an_interrupted_run_is_noted_as_without_the_record(applied: Path, skyplan, planned) -> None:
    import json

    recorded_clean(skyplan, planned)
    path = applied / ".skyplan/state.json"
    document = json.loads(path.read_text())
    document["interrupted"] = {"id": "7f1e", "operation": "apply", "who": "someone@elsewhere", "started": "2026-12-01T00:00:00Z"}
    path.write_text(json.dumps(document, indent=2) + "\n")
    result = as_without_records(skyplan)
    assert "was interrupted" in result.output, result.output


# -- how the refresh's check reaches the files --------------------------------------------------


def _symlink_to_copy(path: Path) -> None:
    copy = path.with_name(path.name + ".real")
    shutil.copy2(path, copy)
    path.unlink()
    path.symlink_to(copy.name)


def _config_symlink(root: Path) -> None:
    _symlink_to_copy(root / CONFIG)


def _key_symlink(root: Path) -> None:
    _symlink_to_copy(root / KEY)


def _cluster_folder_symlink(root: Path) -> None:
    folder = root / CONFIG.parent
    shutil.copytree(folder, folder.with_name("us-west.real"))
    shutil.rmtree(folder)
    folder.symlink_to("us-west.real")


def _keys_folder_symlink(root: Path) -> None:
    folder = root / KEY.parent
    copy = root / ".skyplan" / "keys.real"
    shutil.copytree(folder, copy)
    shutil.rmtree(folder)
    folder.symlink_to("keys.real")


def _config_fifo(root: Path) -> None:
    (root / CONFIG).unlink()
    os.mkfifo(root / CONFIG, 0o600)


def _key_fifo(root: Path) -> None:
    (root / KEY).unlink()
    os.mkfifo(root / KEY, 0o600)


def _config_folder(root: Path) -> None:
    (root / CONFIG).unlink()
    (root / CONFIG).mkdir()


def _key_folder(root: Path) -> None:
    (root / KEY).unlink()
    (root / KEY).mkdir()


def _config_hard_link(root: Path) -> None:
    # The same bytes under a second name: read as the file it is, with or without the records.
    os.link(root / CONFIG, root / "elsewhere.conf")


def _key_hard_link(root: Path) -> None:
    os.link(root / KEY, root / "elsewhere.key")


def _key_too_large(root: Path) -> None:
    path = root / KEY
    path.write_text(path.read_text() + " " * 5000)


PLANTED = {
    "config is a symlink to a copy": (_config_symlink, 1, "symlink"),
    "key file is a symlink to a copy": (_key_symlink, 1, "symlink"),
    "cluster's output folder is a symlink to a copy": (_cluster_folder_symlink, 1, "symlink"),
    "keys folder is a symlink to a copy": (_keys_folder_symlink, 1, "symlink"),
    "config is a FIFO": (_config_fifo, 1, "cannot be read"),
    "key file is a FIFO": (_key_fifo, 1, "cannot be read"),
    "config is a folder": (_config_folder, 1, "cannot be read"),
    "key file is a folder": (_key_folder, 1, "cannot be read"),
    "key file is too large": (_key_too_large, 1, "cannot be read"),
    "config has a hard link": (_config_hard_link, 0, "No changes."),
    "key file has a hard link": (_key_hard_link, 0, "No changes."),
}


@pytest.mark.parametrize("planted", sorted(PLANTED))
def test_a_file_planted_after_a_clean_plan_is_reported_as_without_the_records(applied: Path, skyplan, planned, planted: str) -> None:
    change, code, shown = PLANTED[planted]
    recorded_clean(skyplan, planned)
    change(applied)
    result = as_without_records(skyplan)
    assert result.exit_code == code and shown in result.output, result.output
    assert "Traceback" not in result.output


def _git(root: Path, *args: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    environment.update(GIT_AUTHOR_NAME="a", GIT_AUTHOR_EMAIL="a@example.com", GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@example.com")
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=environment)


def test_a_key_file_git_tracks_is_refused_as_without_the_records(applied: Path, skyplan, planned) -> None:
    from skyplan import repository

    recorded_clean(skyplan, planned)
    _git(applied, "init", "-q")
    _git(applied, "add", "-f", str(KEY))
    _git(applied, "commit", "-q", "-m", "the key, by mistake or by a pull request")
    # Each command is a process of its own, which asks git afresh; here they share one.
    repository._repository_of.cache_clear()
    repository._tracked_in.cache_clear()
    result = as_without_records(skyplan)
    assert result.exit_code == 1 and "is tracked by git" in result.output, result.output


@pytest.mark.parametrize("output_dir", [".", "OUTSIDE", "../ws-out"], ids=["the workspace itself", "outside", "beside, by .."])
def test_an_output_dir_elsewhere_reads_as_the_full_refresh_does(workspace: Path, skyplan, planned, tmp_path_factory, output_dir: str) -> None:
    if output_dir == "OUTSIDE":
        output_dir = str(tmp_path_factory.mktemp("outside") / "wg")
    (workspace / "links.yaml").write_text(BASIC.replace("address_pool: 100.96.0.0/16", f"address_pool: 100.96.0.0/16\n  output_dir: {output_dir}"))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    recorded_clean(skyplan, planned)
    base = Path(os.path.normpath(workspace / output_dir))
    _symlink_to_copy(base / "us-west" / "wgsky0.conf")
    result = as_without_records(skyplan)
    assert result.exit_code == 1 and "symlink" in result.output, result.output


@pytest.mark.postgres
def test_a_shared_state_another_writer_edited_is_planned_in_full(workspace: Path, skyplan, planned, postgres_url) -> None:
    # Another writer of the shared database hands a link to skyctl, serial and all as before:
    # nothing on disk changes, so the refresh finds nothing, and only the state can tell.
    from tests.state.test_hostile_state import _edit_row, _postgres_workspace

    name = _postgres_workspace(workspace, postgres_url, BASIC)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    recorded_clean(skyplan, planned)

    def edit(document: dict) -> None:
        link = next(r for r in document["resources"] if (r["type"], r["name"]) == ("link", "us-eu"))
        link["managed_by"] = "skyctl"

    _edit_row(postgres_url, name, edit)
    result = as_without_records(skyplan)
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in result.output, result.output


def test_read_at_and_read_below_take_one_name_and_never_climb(tmp_path: Path) -> None:
    from skyplan import atomic
    from skyplan.errors import UnsafePathError

    (tmp_path / "secret").write_text("outside\n")
    inner = tmp_path / "out"
    (inner / "a").mkdir(parents=True)
    (inner / "a" / "wg.conf").write_text("inside\n")
    fd = atomic.open_folder(inner, tmp_path)
    try:
        assert atomic.read_below(fd, "a", "wg.conf", "shown") == b"inside\n"
        for folder, name in (("..", "secret"), (".", "a"), ("", "secret"), ("a/..", "secret"), ("a", "../../secret")):
            with pytest.raises((UnsafePathError, OSError)):
                atomic.read_below(fd, folder, name, "shown")
        for name in ("../secret", "a/wg.conf", "..", "."):
            with pytest.raises((UnsafePathError, OSError)):
                atomic.read_at(fd, name, "shown")
        (inner / "link").symlink_to(tmp_path / "secret")
        (inner / "up").symlink_to(tmp_path)
        with pytest.raises(UnsafePathError):
            atomic.read_at(fd, "link", "shown")
        with pytest.raises(UnsafePathError):
            atomic.read_below(fd, "up", "secret", "shown")
    finally:
        os.close(fd)
