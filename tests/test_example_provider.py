"""The minimal provider of examples/provider-minimal, installed as a user would, planned and applied.

It is built offline (pip, with build isolation, from the setuptools wheel virtualenv ships) into
a folder of its own, so that this interpreter's installed providers stay as they are for other
tests; skyplan then runs in a subprocess that has that folder on its path, and finds the
provider through its `skyplan.providers` entry point like any plugin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "provider-minimal"

LINKS = """\
version: 1
provider:
  name: minimal
  output_dir: out
clusters:
  - name: a
    endpoint: 192.0.2.1:51820
  - name: b
    endpoint: 192.0.2.2:51820
  - name: c
    endpoint: 192.0.2.3:51820
links:
  - name: a-b
    source: a
    target: b
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The example provider installed into a folder of its own; returns the folder."""
    import virtualenv

    base = tmp_path_factory.mktemp("provider-minimal")
    wheels = base / "wheels"
    wheels.mkdir()
    for wheel in (Path(virtualenv.__file__).parent / "seed" / "wheels" / "embed").glob("setuptools-*.whl"):
        shutil.copy2(wheel, wheels / wheel.name)
    source = shutil.copytree(EXAMPLE, base / "source")  # the build leaves its files next to the source
    target = base / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--find-links", str(wheels),
         "--target", str(target), str(source)],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert (target / "skyplan_minimal.py").is_file()
    return target


def _run(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "NO_COLOR": "1"}
    env.pop("SKYPLAN_BACKEND", None)
    return subprocess.run([sys.executable, "-m", "skyplan", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_minimal_provider_plans_and_applies_through_skyplan(installed: Path, workspace: Path) -> None:
    (workspace / "links.yaml").write_text(LINKS)
    assert _run(installed, workspace, "validate").returncode == 0

    plan = _run(installed, workspace, "plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "Plan: 4 to add, 0 to change, 0 to destroy." in plan.stdout
    assert not (workspace / "out").exists()  # a plan writes nothing

    applied = _run(installed, workspace, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    files = {p.name: json.loads(p.read_text()) for p in sorted((workspace / "out").iterdir())}
    assert files == {
        "a.json": {"cluster": "a", "endpoint": "192.0.2.1:51820", "peers": ["b"]},
        "b.json": {"cluster": "b", "endpoint": "192.0.2.2:51820", "peers": ["a"]},
        "c.json": {"cluster": "c", "endpoint": "192.0.2.3:51820", "peers": []},
    }
    state = json.loads((workspace / ".skyplan" / "state.json").read_text())
    assert sorted(r["type"] + "." + r["name"] for r in state["resources"]) == ["cluster.a", "cluster.b", "cluster.c", "link.a-b"]

    again = _run(installed, workspace, "plan", "--detailed-exitcode")
    assert again.returncode == 0 and "No changes." in again.stdout, again.stdout + again.stderr

    # A link added, a file edited by hand: the plan shows both, apply puts both right.
    (workspace / "links.yaml").write_text(LINKS + "  - name: b-c\n    source: b\n    target: c\n")
    (workspace / "out" / "a.json").write_text('{"cluster": "a", "peers": ["someone"]}\n')
    drifted = _run(installed, workspace, "plan")
    assert drifted.returncode == 0, drifted.stdout + drifted.stderr
    assert "link.b-c will be created" in drifted.stdout and "cluster.a" in drifted.stdout
    assert _run(installed, workspace, "apply", "--auto-approve").returncode == 0
    assert json.loads((workspace / "out" / "a.json").read_text())["peers"] == ["b"]
    assert json.loads((workspace / "out" / "c.json").read_text())["peers"] == ["b"]

    destroyed = _run(installed, workspace, "destroy", "--auto-approve")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert list((workspace / "out").iterdir()) == []


def test_an_unreadable_file_is_a_clear_error_not_a_traceback(installed: Path, workspace: Path) -> None:
    (workspace / "links.yaml").write_text(LINKS)
    assert _run(installed, workspace, "apply", "--auto-approve").returncode == 0
    (workspace / "out" / "b.json").write_text("{not json")
    result = _run(installed, workspace, "plan")
    assert result.returncode == 1
    assert "b.json cannot be read" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr and "internal error" not in result.stdout + result.stderr
