"""Files a command is given by name: a symlink may not lead out of the workspace, a plan not into .skyplan."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workspaces import BASIC

SECRET = "ghp_Sup3rSecretTokenValue0123456789"


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outside")


def test_a_configuration_linked_out_of_the_workspace_is_not_read(workspace, skyplan, outside):
    # A pull request replaces links.yaml with a link to a runner's file: messages would quote it.
    (outside / "token.yaml").write_text(f"version: {SECRET}\n")
    (workspace / "links.yaml").symlink_to(outside / "token.yaml")
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"], ["fmt", "--check"]):
        result = skyplan(*command)
        assert result.exit_code == 1, (command, result.output)
        assert "links.yaml: is a symlink to a file outside its folder" in result.output
        assert SECRET[4:12] not in result.output
    assert sorted(p.name for p in workspace.iterdir()) == ["links.yaml"]


def test_a_variables_file_linked_out_of_its_folder_is_not_read(workspace, skyplan, outside):
    (outside / "vars.yaml").write_text(f"token: {SECRET}\n")
    (workspace / "links.yaml.j2").write_text(BASIC)
    (workspace / "vars.yaml").symlink_to(outside / "vars.yaml")
    result = skyplan("plan", "links.yaml.j2", "--var-file", "vars.yaml")
    assert result.exit_code == 1
    assert "vars.yaml: is a symlink to a file outside its folder" in result.output
    assert SECRET[4:12] not in result.output


def test_a_configuration_linked_within_its_folder_is_read(workspace, skyplan):
    (workspace / "prod.yaml").write_text(BASIC)
    (workspace / "links.yaml").symlink_to("prod.yaml")
    assert skyplan("validate").output == "Success! The configuration is valid.\n"


@pytest.mark.parametrize("out", [".skyplan/state.json", ".skyplan/review.plan", ".skyplan/keys/x.plan"])
def test_a_plan_is_never_written_into_the_state_folder(basic, skyplan, out):
    result = skyplan("plan", "--out", out)
    assert result.exit_code == 1
    assert ".skyplan holds the state and keys; choose another file" in result.output
    assert not (basic / out).exists()
