"""The one place errors become exit codes: expected ones are one line, bugs leave a report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
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


DB_PASSWORD = "Hx9-Qv7wZk-Jp2yR"
KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="  # a WireGuard-shaped key


def crash_in_report_folder(monkeypatch, tmp_path, exc: BaseException, argv: list[str]):
    """Run a command that hits a bug, with `argv` as the command line; the report's text."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(sys, "argv", argv)
    result = CliRunner().invoke(group_raising(exc), ["boom"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output
    report = Path(result.output.rsplit(" ", 1)[1].strip())
    return report, report.read_text()


def test_the_report_keeps_no_secret_from_the_command_line_or_environment(monkeypatch, tmp_path):
    from tests.state.test_urls import assert_hidden

    monkeypatch.setenv("SKYPLAN_BACKEND", f"postgresql://sky:{DB_PASSWORD[:5]}@{DB_PASSWORD[5:]}@db.internal/sky")
    monkeypatch.setenv("PGPASSWORD", f"pg-{DB_PASSWORD}")
    monkeypatch.setenv("SKYPLAN_CONFIG", "links.yaml")
    argv = [
        "skyplan", "plan",
        "--backend", f"postgresql://sky:{DB_PASSWORD}@db.internal:5432/sky",
        f"--url=postgresql://sky@db.internal/sky?sslmode=require&password={DB_PASSWORD}",
        "--password", f"x{DB_PASSWORD}",
        "--var", f"db_password={DB_PASSWORD}y",
        f"--var=token=z{DB_PASSWORD}",
        "--public-key", KEY,
    ]
    # The exception's own text may quote a secret in any shape.
    bug = RuntimeError(f"cannot parse {DB_PASSWORD[3:]} with key {KEY.lower()}")
    report, text = crash_in_report_folder(monkeypatch, tmp_path, bug, argv)
    assert_hidden(text, DB_PASSWORD)
    assert KEY not in text and KEY.lower() not in text and KEY[:20] not in text
    # What helps to find the bug is still there.
    assert "'plan'" in text and "'--var', 'db_password=***'" in text and "RuntimeError" in text
    assert "postgresql://sky:***@db.internal:5432/sky" in text
    assert "SKYPLAN_BACKEND=postgresql://sky:***@db.internal/sky" in text
    assert "PGPASSWORD=***" in text and "SKYPLAN_CONFIG=links.yaml" in text


def test_the_report_is_private_and_in_the_temporary_folder(monkeypatch, tmp_path):
    import stat

    report, _ = crash_in_report_folder(monkeypatch, tmp_path, ZeroDivisionError("oops"), ["skyplan", "plan"])
    assert report.parent == tmp_path and report.name.startswith("skyplan-crash-")
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert not report.is_symlink() and report.stat().st_nlink == 1


def test_a_report_that_cannot_be_saved_is_still_one_line(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    result = CliRunner().invoke(group_raising(ZeroDivisionError("oops")), ["boom"])
    assert result.exit_code == 1
    assert result.output == "Error: unexpected internal error (ZeroDivisionError); the report could not be saved (No such file or directory)\n"


@pytest.mark.postgres
def test_a_password_from_links_yaml_is_kept_out_of_the_report(workspace, skyplan, monkeypatch, tmp_path, postgres_server):
    import json
    import tempfile

    from tests.state.test_urls import assert_hidden
    from tests.workspaces import BASIC

    url = postgres_server.url(postgres_server.create_database().rsplit("/", 1)[1], password=DB_PASSWORD)  # trusted role
    (workspace / "links.yaml").write_text(BASIC.replace("clusters:\n", f"backend: {{type: postgres, url: {json.dumps(url)}}}\nclusters:\n", 1))
    reports = tmp_path / "reports"
    reports.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(reports))

    def bug(*args, **kwargs):
        raise RuntimeError(f"lost track of {DB_PASSWORD[2:]}")  # a bug quoting what it should not

    monkeypatch.setattr("skyplan.planning.make_plan", bug)
    result = skyplan("plan")
    assert result.exit_code == 1 and "unexpected internal error (RuntimeError)" in result.stderr
    [report] = reports.iterdir()
    assert "lost track of ***" in report.read_text()
    assert_hidden(report.read_text(), DB_PASSWORD)
