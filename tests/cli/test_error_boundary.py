"""The one place errors become exit codes: expected ones are one line, bugs leave a report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from skyplan.cli.common import GuardedGroup
from skyplan.errors import SkyplanError


def group_raising(exc: BaseException) -> click.Group:
    @click.group(cls=GuardedGroup)
    def main() -> None:
        pass

    @main.command()
    def boom() -> None:
        raise exc

    return main


def test_expected_errors_are_one_line():
    result = CliRunner().invoke(group_raising(SkyplanError("the lock is held")), ["boom"])
    assert result.exit_code == 1
    assert result.output == "Error: the lock is held\n"


def test_bugs_are_one_line_and_a_saved_report(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    result = CliRunner().invoke(group_raising(ZeroDivisionError("oops")), ["boom"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: unexpected internal error (ZeroDivisionError); the full report was saved to ")
    report = Path(lines[0].rsplit(" ", 1)[1])
    assert report.parent == tmp_path and "ZeroDivisionError: oops" in report.read_text()


def test_a_closed_pipe_ends_quietly():
    result = CliRunner().invoke(group_raising(BrokenPipeError()), ["boom"])
    assert result.exit_code == 1
    assert result.output == ""


def test_a_reader_that_goes_away_is_not_a_crash(tmp_path):
    # `true` exits before skyplan writes, so every write meets a closed pipe.
    pipeline = f"{sys.executable} -m skyplan schema 2>stderr.txt | true"
    subprocess.run(["bash", "-c", pipeline], cwd=tmp_path, check=True, timeout=60)
    assert (tmp_path / "stderr.txt").read_text() == ""


def test_a_huge_value_does_not_make_a_huge_message(workspace, skyplan):
    (workspace / "links.yaml").write_text("version: 1\nclusters:\n  - {name: a, endpoint: '" + "x" * 70000 + ":1'}\n")
    result = skyplan("validate")
    assert result.exit_code == 1
    assert len(result.output) < 2200 and "more characters)" in result.output
