"""The CI example, run as fresh GitHub runners run it: each job in a new clone, with only the
secrets (state in the real PostgreSQL the suite starts, keys restored from SKYPLAN_KEYS).

Every `run:` step of examples/ci/github-actions.yml is executed by bash as the runner does;
the actions (`uses:`) are stood in for: checkout is a `git clone`, upload-artifact collects the
paths it names, github-script posts comment.md.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from ruamel.yaml import YAML

from skyplan.state.postgres import STATES_TABLE

WORKFLOW = Path(__file__).resolve().parent.parent / "examples" / "ci" / "github-actions.yml"
COMMENT_LIMIT = 65_536  # characters GitHub accepts in one comment
CLUSTERS = 200
LINKS = CLUSTERS * (CLUSTERS - 1) // 2
ARTIFACT_URL = "https://github.example/acme/links/actions/runs/7/artifacts/{name}"


def mesh_config(clusters: int, moved: int | None = None) -> str:
    lines = ["version: 1", "provider:", "  name: wireguard", "  address_pool: 100.96.0.0/16", "clusters:"]
    for i in range(clusters):
        host = f"198.18.{i // 250}.{i % 250 + 1}" if i != moved else "198.19.0.1"
        lines.append(f'  - {{name: site-{i:03d}, endpoint: "{host}:51820", subnets: [10.{i // 100}.{i % 100}.0/24]}}')
    lines += ["meshes:", "  - name: core", "    clusters: [" + ", ".join(f"site-{i:03d}" for i in range(clusters)) + "]"]
    return "\n".join(lines) + "\n"


@dataclass
class JobRun:
    folder: Path
    logs: list[str] = field(default_factory=list)
    artifacts: dict[str, list[str]] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)


class Repository:
    """A repository holding links.yaml, and the runners that check it out."""

    def __init__(self, root: Path, backend: str):
        self.root = root
        self.origin = root / "origin"
        self.secrets = {"SKYPLAN_BACKEND": backend, "SKYPLAN_KEYS": ""}
        self.workflow = YAML(typ="safe").load(WORKFLOW.read_text())
        self.runs = 0
        self._git("init", "-q", str(self.origin))

    def _git(self, *args: str, cwd: Path | None = None) -> None:
        subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args], cwd=cwd, check=True, capture_output=True)

    def commit(self, text: str) -> None:
        (self.origin / "links.yaml").write_text(text)
        # Committed in canonical layout, as the pre-commit hook keeps it.
        subprocess.run([str(Path(sys.executable).with_name("skyplan")), "fmt", "links.yaml"], cwd=self.origin, check=True, capture_output=True)
        self._git("add", "links.yaml", cwd=self.origin)
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

    def run_job(self, name: str) -> JobRun:
        job = self.workflow["jobs"][name]
        self.runs += 1
        run = JobRun(self.root / f"runner-{self.runs}")  # a new machine: nothing of earlier runs
        outputs: dict[str, str] = {}
        base = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # skyplan, as pip installed it
            "HOME": str(self.root / f"home-{self.runs}"),
            "LANG": "C.UTF-8",
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
                )
                assert done.returncode == 0, f"step {step.get('name') or step['run'][:60]!r} failed:\n{done.stdout}\n{done.stderr}"
                run.logs.append(done.stdout)
        return run

    def save_keys(self, run: JobRun) -> None:
        """What the maintainer does after an apply that created keys: refresh SKYPLAN_KEYS."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(run.folder / ".skyplan" / "keys", arcname="keys")
        self.secrets["SKYPLAN_KEYS"] = base64.b64encode(buffer.getvalue()).decode()


def recorded(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = 'default'").fetchone()[0]


def public_keys(state: dict) -> dict[str, str]:
    return {r["name"]: r["computed"]["public_key"] for r in state["resources"] if r["type"] == "cluster"}


@pytest.mark.postgres
def test_fresh_runners_review_and_apply_a_200_cluster_mesh(tmp_path, postgres_server):
    url = postgres_server.create_database()
    repo = Repository(tmp_path, url)
    repo.commit(mesh_config(CLUSTERS))

    # The first pull request: a plan of 20,100 resources, 3 MB as text, cut to fit one comment.
    first = repo.run_job("plan")
    [comment] = first.comments
    assert len(comment) < COMMENT_LIMIT
    assert f"**Plan: {CLUSTERS + LINKS} to add, 0 to change, 0 to destroy.**" in comment
    assert f"[skyplan-plan artifact]({ARTIFACT_URL.format(name='skyplan-plan')})" in comment
    assert "```mermaid\n---\ntitle: \"Plan:" in comment and f"mesh core ({CLUSTERS} clusters)" in comment
    assert "... cut to fit a comment:" in comment and "+ cluster.site-000" in comment
    assert first.artifacts["skyplan-plan"] == ["plan-full.txt", "plan.json", "plan.mmd"]
    assert (first.folder / "plan-full.txt").stat().st_size > 40 * COMMENT_LIMIT  # all of it is there
    assert json.loads((first.folder / "plan.json").read_text())["summary"]["add"] == CLUSTERS + LINKS

    # The merge: a fresh runner without keys (there are none yet) applies; keys are saved.
    merged = repo.run_job("apply")
    assert f"Apply complete! Resources: {CLUSTERS + LINKS} added, 0 changed, 0 destroyed." in merged.logs[-1]
    repo.save_keys(merged)
    applied = recorded(url)

    # An unchanged file, on fresh runners (no configs there), plans and applies nothing.
    review = repo.run_job("plan")
    assert (review.folder / "plan.txt").read_text().startswith("No changes. Links match the configuration.\n")
    [comment] = review.comments
    assert comment.startswith("### skyplan plan\n\n**No changes. Links match the configuration.**")
    assert len(comment) < COMMENT_LIMIT and "classDef" not in comment  # nothing coloured
    again = repo.run_job("apply")
    assert "No changes. Links match the configuration." in again.logs[-2]
    assert not (again.folder / "wireguard").exists()  # no cluster rewritten, none reloaded
    assert recorded(url)["serial"] == applied["serial"]

    # One cluster moves: the merge's plan is exactly that, and its apply keeps every key.
    # (The review job runs the same plan command; the picture's colours are tested in
    # tests/render/test_graph.py. Not run again here: this test is the suite's slowest.)
    repo.commit(mesh_config(CLUSTERS, moved=7))
    merge = repo.run_job("apply")
    assert "# cluster.site-007 will be updated in-place" in merge.logs[-2]
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in merge.logs[-2]
    assert "Apply complete! Resources: 0 added, 1 changed, 0 destroyed." in merge.logs[-1]
    assert public_keys(recorded(url)) == public_keys(applied)
    assert (merge.folder / "wireguard/site-007/wgsky0.conf").exists()
    assert "198.19.0.1:51820" in (merge.folder / "wireguard/site-000/wgsky0.conf").read_text()


def _comment_step() -> dict:
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    return next(s for s in workflow["jobs"]["plan"]["steps"] if s.get("name") == "comment")


@pytest.mark.parametrize("edges", [10, 501])
def test_comment_leaves_out_a_picture_github_cannot_draw(tmp_path, edges):
    plan = "".join(f"  + link.l{i}\n" for i in range(20_000)) + "\nPlan: 20000 to add, 0 to change, 0 to destroy.\n"
    (tmp_path / "plan.txt").write_text(plan)
    (tmp_path / "plan.mmd").write_text("flowchart LR\n" + "".join(f"  c_{i} --- c_{i + 1}\n" for i in range(edges)))
    env = {"PATH": os.environ["PATH"], "PLAN_URL": "https://github.example/artifact"}
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _comment_step()["run"]], cwd=tmp_path, env=env, check=True, capture_output=True)
    comment = (tmp_path / "comment.md").read_text()
    assert len(comment) < COMMENT_LIMIT
    assert comment.startswith("### skyplan plan\n\n**Plan: 20000 to add, 0 to change, 0 to destroy.** Full plan: [skyplan-plan artifact](https://github.example/artifact)\n")
    assert ("```mermaid" in comment) == (edges <= 500)
    assert (f"_The picture ({edges} edges) is too large" in comment) == (edges > 500)
    # Cut at a line, never inside one, and said so.
    body = comment[comment.index("<details open>"):]
    lines = body.split("```\n")[1].splitlines()
    assert lines[-1].startswith("... cut to fit a comment: 20002 lines in all")
    assert all(re.fullmatch(r"  \+ link\.l\d+", line) for line in lines[:-1])
    assert len(lines) > 1000
