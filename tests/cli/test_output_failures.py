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


def run(argv: list[str], cwd: Path, tmp_path: Path, *, stdout, close: tuple[int, ...] = (), stdin=None, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    """A console script as a user runs it, its crash reports (if any) going to tmp_path/reports."""
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(reports)}
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        text=True,
        timeout=120,
        preexec_fn=(lambda: [os.close(fd) for fd in close]) if close else None,
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
    ["skyplan", "--help"],  # printed while click parses the command line
    ["skyctl", "--version"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv))
@pytest.mark.parametrize("how", ["full disk", "closed"])
def test_an_output_that_cannot_be_written_is_one_clear_error(argv, how, folder, tmp_path):
    if how == "full disk":
        with open("/dev/full", "w") as full:
            done = run(argv, folder, tmp_path, stdout=full)
        expected = "Error: cannot write to standard output: No space left on device\n"
    else:
        done = run(argv, folder, tmp_path, stdout=None, close=(1,))
        expected = "Error: cannot write to standard output: it is closed\n"
    assert done.returncode == 1
    assert done.stderr == expected
    assert list((tmp_path / "reports").iterdir()) == []  # not taken for a bug


@pytest.mark.parametrize(
    "argv",
    [
        ["skyplan", "apply", "--auto-approve"],
        ["skyplan", "apply", "--auto-approve", "--json"],  # would print nothing before it is done
        ["skyctl", "create", "cluster", "c9", "--endpoint", "192.0.2.9:51820"],
    ],
    ids=lambda argv: " ".join(argv[1:3]) + (" --json" if "--json" in argv else ""),
)
def test_a_command_with_its_output_closed_changes_nothing(argv, folder, tmp_path):
    # Every command says what it did: one that cannot say it does not start.
    done = run(argv, folder, tmp_path, stdout=None, close=(1,))
    assert done.returncode == 1 and done.stderr == "Error: cannot write to standard output: it is closed\n"
    assert sorted(p.name for p in folder.iterdir()) == ["links.yaml"]


def test_a_closed_stdin_is_empty_and_no_terminal(folder, tmp_path):
    done = run(["skyplan", "apply"], folder, tmp_path, stdout=subprocess.PIPE, close=(0,))
    assert done.returncode == 1 and "needs confirmation" in done.stderr and "internal error" not in done.stderr
    done = run(["skyplan", "fmt", "-"], folder, tmp_path, stdout=subprocess.PIPE, close=(0,))
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""  # empty input: nothing to format
    assert list((tmp_path / "reports").iterdir()) == []


def test_an_error_that_cannot_be_told_is_still_exit_1_and_no_crash_report(folder, tmp_path):
    with open("/dev/full", "w") as full:
        done = run(["skyplan", "validate", "missing.yaml"], folder, tmp_path, stdout=subprocess.PIPE, stderr=full)
        assert done.returncode == 1
        done = run(["skyplan", "validate", "missing.yaml"], folder, tmp_path, stdout=subprocess.PIPE, close=(2,))
        assert done.returncode == 1
    assert list((tmp_path / "reports").iterdir()) == []


def test_a_change_whose_report_cannot_be_written_says_it_was_made(folder, tmp_path):
    with open("/dev/full", "w") as full:
        done = run(["skyctl", "create", "cluster", "c9", "--endpoint", "192.0.2.9:51820"], folder, tmp_path, stdout=full)
    assert done.returncode == 1
    assert done.stderr == "Error: Created cluster c9, but the output could not be written (No space left on device)\n"
    again = run(["skyctl", "get", "cluster", "c9"], folder, tmp_path, stdout=subprocess.PIPE)
    assert again.returncode == 0 and "c9" in again.stdout


def test_a_closed_descriptor_is_never_handed_to_a_file(tmp_path):
    """With stdin or stderr closed the next file opened would take its descriptor, and what a
    program skyplan runs writes to stderr (or reads from stdin) would go to that file."""
    code = (
        "import os, sys\n"
        "from skyplan.cli import entry\n"
        "entry._start()\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "print(fd, os.readlink('/proc/self/fd/0'), os.readlink('/proc/self/fd/2'), sys.stdin.read() == '')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "opened")], stdout=subprocess.PIPE, text=True, timeout=60,
        preexec_fn=lambda: [os.close(0), os.close(2)],
    )
    fd, stdin, stderr, empty = done.stdout.split()
    assert int(fd) > 2 and stdin == stderr == os.devnull and empty == "True"


def full_after_the_plan(monkeypatch) -> None:
    """The terminal as a full disk once the plan went out: the first progress line meets it."""
    from skyplan.cli import common

    shown: list[str] = []

    def show(text: str) -> None:
        if shown:
            raise OutputError("cannot write to standard output: No space left on device")
        shown.append(text)

    monkeypatch.setattr(common, "_show", show)


def test_an_apply_whose_output_fails_midway_finishes_and_records_it(basic, skyplan, monkeypatch):
    from skyplan.cli import common

    real = common._show
    full_after_the_plan(monkeypatch)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert result.output.endswith(
        "Error: cannot write to standard output: No space left on device; the apply went on without it, "
        "and the state records its changes\n"
    )
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


def test_what_failed_is_told_when_the_output_fails_too(workspace, skyplan, monkeypatch):
    from skyplan.cli import common
    from tests.workspaces import BASIC

    (workspace / "links.yaml").write_text(BASIC.replace(
        "  address_pool: 100.96.0.0/16\n", "  address_pool: 100.96.0.0/16\n  on_change: [sh, -c, 'test $0 != ap-south', '{{ cluster }}']\n"))
    full_after_the_plan(monkeypatch)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert result.output.endswith(
        "Error: 3 resources failed; the state records what succeeded; the rest of this apply's output could not be "
        "written (No space left on device)\n"
    ), result.output


@pytest.mark.parametrize("json_output", [False, True])
@pytest.mark.parametrize("error", ["full disk", "reader gone"])
def test_an_output_that_fails_at_the_outcome_still_tells_what_failed(json_output, error, workspace, skyplan, monkeypatch):
    """A buffered stdout reports a disk that filled during the progress lines at its next write:
    the outcome's. What failed is told on stderr all the same (with --json, the only write)."""
    from skyplan.cli import common
    from tests.workspaces import BASIC

    (workspace / "links.yaml").write_text(BASIC.replace(
        "  address_pool: 100.96.0.0/16\n", "  address_pool: 100.96.0.0/16\n  on_change: [sh, -c, 'test $0 != ap-south', '{{ cluster }}']\n"))
    real = common._show

    def show(text: str) -> None:
        if "Apply complete" in text or "Apply failed" in text or '"outcome"' in text or text.lstrip().startswith("{"):
            raise OutputError("cannot write to standard output: No space left on device") if error == "full disk" else BrokenPipeError()
        real(text)

    monkeypatch.setattr(common, "_show", show)
    result = skyplan("apply", "--auto-approve", *(["--json"] if json_output else []))
    assert result.exit_code == 1
    why = "No space left on device" if error == "full disk" else "its reader went away"
    assert result.output.endswith(
        f"Error: 3 resources failed; the state records what succeeded; the rest of this apply's output could not be written ({why})\n"
    ), result.output
