"""Every bundled example works as written: configs plan and apply, recipes name real commands."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from ruamel.yaml import YAML

from skyplan.cli.skyplan_cmd import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# example folder -> (command-line arguments after the file, resources created, links)
CONFIGS = {
    "basic": ("links.yaml", [], 5, 2),
    "full-mesh": ("links.yaml", [], 21, 15),
    "hub-and-spoke": ("links.yaml", [], 11, 5),
    "hub-nat": ("links.yaml", [], 7, 3),
    "skyshift-manifests": ("links.yaml", [], 3, 1),
    "templated": ("links.yaml.j2", ["--var-file", "regions.yaml", "--var", "env=staging"], 6, 3),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_example_validates_plans_and_applies(name, tmp_path, monkeypatch, skyplan):
    file, extra, resources, links = CONFIGS[name]
    workspace = tmp_path / name
    # The README's first command applies examples/basic in place: leave what it wrote behind.
    shutil.copytree(EXAMPLES / name, workspace, ignore=shutil.ignore_patterns(".skyplan", "wireguard"))
    monkeypatch.chdir(workspace)
    assert skyplan("validate", file, *extra).exit_code == 0
    plan = skyplan("plan", file, *extra, "--compact")
    assert plan.exit_code == 0, plan.output
    assert f"Plan: {resources} to add, 0 to change, 0 to destroy." in plan.output
    assert plan.output.count("+ link.") == links
    assert skyplan("apply", file, *extra, "--auto-approve").exit_code == 0
    assert skyplan("plan", file, *extra, "--detailed-exitcode").exit_code == 0
    for config in workspace.glob("wireguard/*/*.conf"):
        subprocess.run(["wg-quick", "strip", str(config)], check=True, capture_output=True)


def test_full_mesh_expands_into_named_links(tmp_path, monkeypatch, skyplan):
    shutil.copytree(EXAMPLES / "full-mesh", tmp_path / "w", ignore=shutil.ignore_patterns(".skyplan", "wireguard"))
    monkeypatch.chdir(tmp_path / "w")
    output = skyplan("plan").output
    assert '  # link.core.us-west.us-east will be created\n  + link "core.us-west.us-east" {' in output


def _commands(text: str) -> list[list[str]]:
    """Each `skyplan …` and `skyctl …` command line in a shell script."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("skyplan ", "skyctl ")):
            words = shlex.split(line.split(">", 1)[0])
            found.append(words)
    return found


def _check_command(words: list[str]) -> None:
    from skyplan.cli.skyctl_cmd import main as skyctl

    assert words[0] in ("skyplan", "skyctl")
    command = main if words[0] == "skyplan" else skyctl
    rest = words[1:]
    while isinstance(command, click.Group):  # skyctl get link: a group, then its command
        command = command.get_command(click.Context(command), rest[0])
        assert command is not None, f"no command {' '.join(words[: len(words) - len(rest) + 1])}"
        rest = rest[1:]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    for word in rest:
        if word.startswith("-"):
            assert word in options, f"{' '.join(words[:2])} has no option {word}"


def test_github_actions_workflow_parses_and_names_real_commands():
    workflow = YAML(typ="safe").load((EXAMPLES / "ci/github-actions.yml").read_text())
    assert set(workflow["jobs"]) == {"plan", "apply", "check"}
    commands = {}
    for name, job in workflow["jobs"].items():
        commands[name] = [words for step in job["steps"] for words in _commands(step.get("run", ""))]
        for words in commands[name]:
            _check_command(words)
    assert [c[1] for c in commands["plan"]] == ["validate", "fmt", "plan", "show", "show", "graph"]
    assert [c[:2] for c in commands["apply"]] == [["skyplan", "plan"], ["skyplan", "apply"]]
    assert [c[:3] for c in commands["check"]] == [["skyplan", "plan", "links.yaml"], ["skyctl", "get", "cluster"], ["skyctl", "get", "link"]]
    # A pull request compares the file with the state and never reaches a gateway; the merge and
    # the check read what runs on the gateways.
    assert "--no-refresh" in commands["plan"][2]
    assert not any("--no-refresh" in c for c in commands["apply"] + commands["check"])
    # The review shows, and the merge applies, exactly the plan each saved.
    review = commands["plan"]
    saved = review[2][review[2].index("--out") + 1]
    assert [c[2] for c in review[3:6]] == [saved] * 3
    merge = commands["apply"]
    assert merge[1][2] == merge[0][merge[0].index("--out") + 1]
    # Only the jobs that need the gateways get the SSH secrets.
    for name, job in workflow["jobs"].items():
        assert ("SKYPLAN_SSH_KEY" in json.dumps(job)) == (name != "plan"), name


@pytest.mark.parametrize("path", ["examples/ci/pre-commit-config.yaml", ".pre-commit-hooks.yaml"])
def test_pre_commit_hooks_name_real_commands(path):
    document = YAML(typ="safe").load((EXAMPLES.parent / path).read_text())
    hooks = document["repos"][0]["hooks"] if isinstance(document, dict) else document
    assert {h["id"] for h in hooks} == {"skyplan-fmt", "skyplan-validate"}
    for hook in hooks:
        _check_command(shlex.split(hook["entry"]))
        assert re.search(hook["files"], "deploy/links.yaml") and not re.search(hook["files"], "links.yaml.bak")
