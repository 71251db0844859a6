"""A standard output that cannot be written: a clear error, exit 1, no crash report, and an apply
that has begun still finishes and records what it did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skyplan.errors import OutputError
from tests.conftest import BASIC

BIN = Path(sys.executable).parent


def run(argv: list[str], cwd: Path, tmp_path: Path, *, stdout, close_stdout: bool = False) -> subprocess.CompletedProcess:
    """A console script as a user runs it, its crash reports (if any) going to tmp_path/reports."""
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(reports)}
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "links.yaml").write_text(BASIC)
    return ws


COMMANDS = [
    ["skyplan", "plan"],  # printed by the console helper
    ["skyplan", "schema"],  # printed with click.echo
    ["skyplan", "validate"],
    ["skyctl", "get", "link"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv))
@pytest.mark.parametrize("how", ["full disk", "closed"])
def test_an_output_that_cannot_be_written_is_one_clear_error(argv, how, folder, tmp_path):
    if how == "full disk":
        with open("/dev/full", "w") as full:
            done = run(argv, folder, tmp_path, stdout=full)
        expected = "Error: cannot write to standard output: No space left on device\n"
    else:
        done = run(argv, folder, tmp_path, stdout=None, close_stdout=True)
        expected = "Error: cannot write to standard output: it is closed\n"
    assert done.returncode == 1
    assert done.stderr == expected
    assert list((tmp_path / "reports").iterdir()) == []  # not taken for a bug


def test_an_apply_with_its_output_closed_changes_nothing(folder, tmp_path):
    # The plan is shown before anything is done: there the command stops.
    done = run(["skyplan", "apply", "--auto-approve"], folder, tmp_path, stdout=None, close_stdout=True)
    assert done.returncode == 1 and done.stderr == "Error: cannot write to standard output: it is closed\n"
    assert not (folder / ".skyplan" / "state.json").exists() and not (folder / "wireguard").exists()


def test_a_closed_descriptor_is_never_handed_to_a_file(tmp_path):
    """With stdout closed the next file opened would take descriptor 1, and everything written
    to stdout (by skyplan, or a program it runs) would go into that file."""
    code = (
        "import os, sys\n"
        "from skyplan.cli import entry\n"
        "entry._start()\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "print(fd, os.readlink('/proc/self/fd/1'), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "opened")], stderr=subprocess.PIPE, text=True, timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    fd, target = done.stderr.split()
    assert int(fd) > 2 and target == os.devnull


def test_an_apply_whose_output_fails_midway_finishes_and_records_it(basic, skyplan, monkeypatch):
    from skyplan.cli import common

    real = common._show
    shown: list[str] = []

    def show(text: str) -> None:
        if shown:  # the plan went out; the first line of progress meets a full disk
            raise OutputError("cannot write to standard output: No space left on device")
        shown.append(text)

    monkeypatch.setattr(common, "_show", show)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert result.output.endswith("Error: cannot write to standard output: No space left on device\n")
    state = json.loads((basic / ".skyplan" / "state.json").read_text())
    assert state["interrupted"] is None
    assert sorted((r["type"], r["name"], r["status"]["phase"], r["pending"]) for r in state["resources"]) == [
        ("cluster", "ap-south", "INIT", None),
        ("cluster", "eu-central", "INIT", None),
        ("cluster", "us-west", "INIT", None),
        ("link", "us-ap", "INIT", None),
        ("link", "us-eu", "INIT", None),
    ]
    assert sorted(p.name for p in (basic / "wireguard").iterdir()) == ["ap-south", "eu-central", "us-west"]
    monkeypatch.setattr(common, "_show", real)
    assert "No changes." in skyplan("plan").output


def test_an_apply_whose_reader_goes_away_midway_finishes_and_records_it(basic, skyplan, monkeypatch):
    from skyplan.cli import common

    calls: list[str] = []

    def show(text: str) -> None:
        calls.append(text)
        if len(calls) > 1:
            raise BrokenPipeError

    monkeypatch.setattr(common, "_show", show)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1 and "Error" not in result.output  # quietly, as `| head` expects
    state = json.loads((basic / ".skyplan" / "state.json").read_text())
    assert state["interrupted"] is None and all(r["pending"] is None for r in state["resources"])
    assert len(calls) == 2  # no more writes tried once the output failed
