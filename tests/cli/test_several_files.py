"""`validate FILE…` and `fmt FILE…`: several files at once, as pre-commit passes them.

Each file is reported on its own, in sorted order, and one bad file fails the run without
hiding the verdict on the others.
"""

from __future__ import annotations

import pytest

from tests.workspaces import BASIC

SUCCESS = "Success! The configuration is valid."
# The same configuration with its first cluster's subnets in block style, which fmt folds.
MESSY = BASIC.replace("subnets: [10.10.0.0/16]", "subnets:\n      - 10.10.0.0/16")
BROKEN_REFERENCE = BASIC.replace("target: eu-central", "target: eu-centrl")
BROKEN_YAML = BASIC.replace("subnets: [10.20.0.0/16]", "subnets: [10.20.0.0/16")


@pytest.fixture
def team(workspace):
    """A repository laid out per environment, as teams keep their links."""
    for folder in ("prod", "stage", "dev"):
        (workspace / folder).mkdir()
        (workspace / folder / "links.yaml").write_text(BASIC)
    return workspace


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_validate_reports_each_valid_file_sorted(team, skyplan):
    result = skyplan("validate", "stage/links.yaml", "prod/links.yaml", "dev/links.yaml", "prod/links.yaml")
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == [f"{env}/links.yaml: {SUCCESS}" for env in ("dev", "prod", "stage")]


def test_validate_one_file_keeps_the_plain_success_line(team, skyplan):
    result = skyplan("validate", "prod/links.yaml")
    assert (result.exit_code, result.output) == (0, SUCCESS + "\n")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (BROKEN_REFERENCE, "Error: stage/links.yaml:18:13: links[0].target: cluster 'eu-centrl' is not defined; did you mean 'eu-central'?"),
        (BROKEN_YAML, "Error: stage/links.yaml:12:9: YAML: while parsing a flow sequence expected ',' or ']', but got ':'"),
        ("\x00", "Error: stage/links.yaml:1:1:"),
    ],
    ids=["reference", "yaml", "binary"],
)
def test_validate_names_the_broken_file_and_still_checks_the_others(team, skyplan, text, error):
    (team / "stage/links.yaml").write_text(text)
    result = skyplan("validate", "stage/links.yaml", "prod/links.yaml", "dev/links.yaml")
    assert result.exit_code == 1
    assert lines(result.stdout) == [f"dev/links.yaml: {SUCCESS}", f"prod/links.yaml: {SUCCESS}"]
    assert [line for line in lines(result.stderr) if line.startswith("Error:")][0].startswith(error)
    assert "stage/links.yaml: Success" not in result.output
    assert "Traceback" not in result.output


def test_validate_reports_every_error_of_every_file(team, skyplan):
    (team / "prod/links.yaml").write_text(BROKEN_REFERENCE.replace("source: us-west", "source: us-wst", 1))
    (team / "stage/links.yaml").write_text(BROKEN_REFERENCE)
    result = skyplan("validate", "prod/links.yaml", "stage/links.yaml", "missing/links.yaml")
    assert result.exit_code == 1
    errors = lines(result.stderr)
    assert errors[0] == "Error: missing/links.yaml: no such file"
    assert [e.split(":")[1] for e in errors[1:]] == [" prod/links.yaml", " prod/links.yaml", " stage/links.yaml"]
    assert result.stdout == ""


def test_validate_warnings_go_to_stderr_per_file(team, skyplan):
    twice = BASIC + "  - name: us-eu-again\n    source: eu-central\n    target: us-west\n"
    (team / "dev/links.yaml").write_text(twice)
    result = skyplan("validate", "dev/links.yaml", "prod/links.yaml")
    assert result.exit_code == 0
    assert lines(result.stdout) == [f"dev/links.yaml: {SUCCESS}", f"prod/links.yaml: {SUCCESS}"]
    assert result.stderr.startswith("Warning: dev/links.yaml:")


def test_fmt_check_names_only_the_files_out_of_layout_and_writes_nothing(team, skyplan):
    (team / "stage/links.yaml").write_text(MESSY)
    (team / "dev/links.yaml").write_text(MESSY)
    result = skyplan("fmt", "--check", "stage/links.yaml", "prod/links.yaml", "dev/links.yaml")
    assert result.exit_code == 1
    assert lines(result.output) == ["dev/links.yaml", "stage/links.yaml"]
    assert (team / "stage/links.yaml").read_text() == MESSY


def test_fmt_rewrites_each_file_then_check_passes(team, skyplan):
    (team / "stage/links.yaml").write_text(MESSY)
    result = skyplan("fmt", "stage/links.yaml", "prod/links.yaml")
    assert (result.exit_code, result.output) == (0, "stage/links.yaml\n")
    assert (team / "stage/links.yaml").read_text() == BASIC
    assert skyplan("fmt", "--check", "stage/links.yaml", "prod/links.yaml").exit_code == 0


def test_fmt_diff_shows_each_file_in_sorted_order(team, skyplan):
    (team / "stage/links.yaml").write_text(MESSY)
    (team / "dev/links.yaml").write_text(MESSY)
    result = skyplan("fmt", "--check", "--diff", "stage/links.yaml", "dev/links.yaml", "prod/links.yaml")
    assert result.exit_code == 1
    output = result.output
    assert output.index("--- a/dev/links.yaml") < output.index("--- a/stage/links.yaml")
    assert "prod/links.yaml" not in output
    assert output.count("+    subnets: [10.10.0.0/16]") == 2


def test_fmt_goes_on_past_a_broken_file(team, skyplan):
    (team / "dev/links.yaml").write_text(BROKEN_YAML)
    (team / "stage/links.yaml").write_text(MESSY)
    result = skyplan("fmt", "dev/links.yaml", "stage/links.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: dev/links.yaml:12:9: YAML:")
    assert result.stdout == "stage/links.yaml\n"
    assert (team / "stage/links.yaml").read_text() == BASIC, "the good file is still formatted"
    assert (team / "dev/links.yaml").read_text() == BROKEN_YAML


def test_fmt_standard_input_stands_alone(team, skyplan):
    result = skyplan("fmt", "-", "prod/links.yaml", input=MESSY)
    assert result.exit_code == 2
    assert "FILE - (standard input) cannot be formatted together with other files." in result.output
    assert skyplan("fmt", "-", input=MESSY).output == BASIC


@pytest.mark.parametrize("command", [("validate",), ("fmt", "--check")])
def test_without_a_file_skyplan_config_is_used(team, skyplan, monkeypatch, command):
    (team / "links.yaml").write_text("version: [")
    (team / "stage/links.yaml").write_text(MESSY)
    monkeypatch.setenv("SKYPLAN_CONFIG", "prod/links.yaml")
    assert skyplan(*command).exit_code == 0
    monkeypatch.setenv("SKYPLAN_CONFIG", "stage/links.yaml")
    assert skyplan(*command).exit_code == (0 if command == ("validate",) else 1)
    monkeypatch.delenv("SKYPLAN_CONFIG")
    assert skyplan(*command).exit_code == 1  # ./links.yaml, the broken one
