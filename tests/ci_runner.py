"""A stand-in for GitHub's runners, to run the CI example (examples/ci/github-actions.yml) as they do.

Each job runs in a new clone with only the secrets. Every `run:` step is executed by bash as the
runner does; the actions (`uses:`) are stood in for: checkout is a `git clone`, upload-artifact
collects the paths it names, github-script posts comment.md. The repository holds links.yaml and
the example's ssh_config, unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from ruamel.yaml import YAML

from skyplan.state.postgres import STATES_TABLE

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ci"
WORKFLOW = EXAMPLE / "github-actions.yml"
SSH_CONFIG = EXAMPLE / "ssh_config"
ARTIFACT_URL = "https://github.example/acme/links/actions/runs/7/artifacts/{name}"


@dataclass
class JobRun:
    folder: Path
    home: Path
    summary: Path
    logs: list[str] = field(default_factory=list)
    artifacts: dict[str, list[str]] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)
    failed: str | None = None  # the name of the step that failed, when one may


class Repository:
    """A repository holding links.yaml and ssh_config, and the runners that check it out."""

    def __init__(self, root: Path, backend: str):
        self.root = root
        self.origin = root / "origin"
        self.secrets = {"SKYPLAN_BACKEND": backend, "SKYPLAN_SSH_KEY": "", "SKYPLAN_KNOWN_HOSTS": ""}
        self.workflow = YAML(typ="safe").load(WORKFLOW.read_text())
        self.runs = 0
        # Runners of pull requests have no way to the gateways: an `ssh` that only records.
        self.no_ssh = root / "no-ssh"
        self.no_ssh.mkdir(parents=True)
        self.ssh_calls = root / "ssh-calls.log"
        (self.no_ssh / "ssh").write_text(f'#!/bin/sh\necho "$*" >> {self.ssh_calls}\nexit 255\n')
        (self.no_ssh / "ssh").chmod(0o755)
        self._git("init", "-q", str(self.origin))
        (self.origin / "ssh_config").write_text(SSH_CONFIG.read_text())

    def _git(self, *args: str, cwd: Path | None = None) -> None:
        subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args], cwd=cwd, check=True, capture_output=True)

    def commit(self, text: str) -> None:
        (self.origin / "links.yaml").write_text(text)
        # Committed in canonical layout, as the pre-commit hook keeps it.
        subprocess.run([str(Path(sys.executable).with_name("skyplan")), "fmt", "links.yaml"], cwd=self.origin, check=True, capture_output=True)
        self._git("add", "links.yaml", "ssh_config", cwd=self.origin)
        self._git("commit", "-qm", "links", cwd=self.origin)

    def _expand(self, text: str, outputs: dict[str, str]) -> str:
        def value(match: re.Match) -> str:
            expression = match.group(1)
            if expression.startswith("secrets."):
                return self.secrets[expression.removeprefix("secrets.")]
            if expression == "vars.SKYPLAN_PIP_SPEC":
                return "skyplan"
            assert expression in outputs, f"the workflow uses {expression}, which no step before it sets"
            return outputs[expression]

        return re.sub(r"\$\{\{\s*(.+?)\s*\}\}", value, str(text))

    def run_job(self, name: str, ssh_from: Path | None = None, may_fail: str | None = None) -> JobRun:
        """Run job `name` on a new runner whose `ssh` comes from `ssh_from` (None: none works).

        Every step must pass, except the one named `may_fail`, which ends the job if it fails.
        """
        job = self.workflow["jobs"][name]
        self.runs += 1
        run = JobRun(self.root / f"runner-{self.runs}", self.root / f"home-{self.runs}", self.root / f"summary-{self.runs}.md")
        outputs: dict[str, str] = {}
        base = {
            # skyplan, as pip installed it; ssh, as the runner has it
            "PATH": f"{ssh_from or self.no_ssh}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOME": str(run.home),
            "LANG": "C.UTF-8",
            "GITHUB_STEP_SUMMARY": str(run.summary),
        }
        for step in job["steps"]:
            uses = step.get("uses", "")
            if uses.startswith("actions/checkout@"):
                self._git("clone", "-q", str(self.origin), str(run.folder))
            elif uses.startswith("actions/setup-python@"):
                pass
            elif uses.startswith("actions/upload-artifact@"):
                name_ = step["with"]["name"]
                run.artifacts[name_] = [p for p in step["with"]["path"].split() if (run.folder / p).exists()]
                if "id" in step:
                    outputs[f"steps.{step['id']}.outputs.artifact-url"] = ARTIFACT_URL.format(name=name_)
            elif uses.startswith("actions/github-script@"):
                assert "readFileSync('comment.md', 'utf8')" in step["with"]["script"]
                run.comments.append((run.folder / "comment.md").read_text(encoding="utf-8"))
            elif step["run"].strip() == 'pip install "$SKYPLAN_PIP_SPEC"':
                pass  # skyplan is installed already: it is the one under test
            else:
                env = dict(base)
                for scope in (self.workflow.get("env", {}), job.get("env", {}), step.get("env", {})):
                    env.update({k: self._expand(v, outputs) for k, v in scope.items()})
                done = subprocess.run(
                    ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                    cwd=run.folder, env=env, capture_output=True, text=True, timeout=600,
                )  # fmt: skip
                run.logs.append(done.stdout + done.stderr)
                if done.returncode != 0 and may_fail is not None and step.get("name") == may_fail:
                    run.failed = may_fail
                    break
                assert done.returncode == 0, f"step {step.get('name') or step['run'][:60]!r} failed:\n{done.stdout}\n{done.stderr}"
        return run


def recorded(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = 'default'").fetchone()[0]


def public_keys(state: dict) -> dict[str, str]:
    return {r["name"]: r["computed"]["public_key"] for r in state["resources"] if r["type"] == "cluster"}
