"""This repository as a pre-commit hook repository, run by the real pre-commit, offline.

A team's repository holds `prod/links.yaml` and `stage/links.yaml`; pre-commit passes both files
to one hook run. It clones this repository (a snapshot of the working tree, so uncommitted
changes are what is tested), makes a virtualenv and pip-installs skyplan into it, as it does for
any user: only the index is replaced by wheels of what this interpreter has installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.wheelhouse import wheelhouse
from tests.workspaces import BASIC

ROOT = Path(__file__).parents[2]
GIT = ["git", "-c", "user.name=skyplan tests", "-c", "user.email=tests@skyplan.invalid", "-c", "init.defaultBranch=main"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def snapshot_of_this_repository(into: Path) -> str:
    """A one-commit repository of the working tree's files (tracked and new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet staged is still listed
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    git(into, "init", "-q")
    git(into, "add", "-A")
    git(into, "commit", "-q", "-m", "snapshot")
    return git(into, "rev-parse", "HEAD")


def offline_wheels(into: Path) -> Path:
    """skyplan's dependencies, plus a setuptools new enough for its build (virtualenv ships one)."""
    import virtualenv

    wheelhouse("skyplan", into)
    embedded = sorted((Path(virtualenv.__file__).parent / "seed" / "wheels" / "embed").glob("setuptools-*.whl"))
    assert embedded, "virtualenv ships no setuptools wheel; the offline build needs one"
    for wheel in embedded:
        shutil.copy2(wheel, into / wheel.name)
    return into


@pytest.fixture(scope="module")
def hook_run(tmp_path_factory):
    """A consumer repository with two links.yaml files, and a function that runs pre-commit there."""
    base = tmp_path_factory.mktemp("pre-commit")
    (base / "hooks").mkdir()
    rev = snapshot_of_this_repository(base / "hooks")
    wheels = offline_wheels(base / "wheels")
    consumer = base / "team-repo"
    for folder in ("prod", "stage"):
        (consumer / folder).mkdir(parents=True)
        (consumer / folder / "links.yaml").write_text(BASIC)
    (consumer / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {base / 'hooks'}\n    rev: {rev}\n    hooks:\n      - id: skyplan-validate\n      - id: skyplan-fmt\n"
    )
    git(consumer, "init", "-q")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SKYPLAN_", "PIP_", "VIRTUALENV_"))}
    environment |= {
        "PRE_COMMIT_HOME": str(base / "cache"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_CONFIG_FILE": os.devnull,  # the machine's pip settings (indexes, constraints) stay out
        "PIP_NO_COMPILE": "1",
        "NO_COLOR": "1",
    }
    pre_commit = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"]

    def run() -> subprocess.CompletedProcess:
        git(consumer, "add", "-A")
        return subprocess.run(pre_commit, cwd=consumer, env=environment, capture_output=True, text=True, timeout=600)

    return consumer, run


def test_two_valid_files_pass(hook_run):
    consumer, run = hook_run
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skyplan validate" in result.stdout and "skyplan fmt" in result.stdout
    assert "Failed" not in result.stdout
    assert result.stdout.count("Passed") == 2


def test_a_broken_file_fails_and_is_named(hook_run):
    consumer, run = hook_run
    broken = consumer / "stage" / "links.yaml"
    broken.write_text(BASIC.replace("target: eu-central", "target: eu-centrl"))
    try:
        result = run()
    finally:
        broken.write_text(BASIC)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("skyplan validate") and line.endswith("Failed") for line in lines)
    assert "Error: stage/links.yaml:18:13: links[0].target: cluster 'eu-centrl' is not defined" in result.stdout
    assert "prod/links.yaml: Success! The configuration is valid." in result.stdout
    assert "Error: prod/links.yaml" not in result.stdout


def test_a_file_out_of_layout_fails_fmt_with_its_diff(hook_run):
    consumer, run = hook_run
    messy = consumer / "prod" / "links.yaml"
    messy.write_text(BASIC.replace("subnets: [10.10.0.0/16]", "subnets:\n      - 10.10.0.0/16"))
    try:
        result = run()
    finally:
        messy.write_text(BASIC)
    assert result.returncode == 1, result.stdout + result.stderr
    fmt_part = result.stdout[result.stdout.index("skyplan fmt") :]
    assert fmt_part.splitlines()[0].endswith("Failed")
    assert "--- a/prod/links.yaml" in fmt_part and "+    subnets: [10.10.0.0/16]" in fmt_part
    assert "stage/links.yaml" not in fmt_part
