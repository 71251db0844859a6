"""The CI example's pull-request job, run as a fresh GitHub runner runs it (tests/ci_runner.py),
with the state in the real PostgreSQL the suite starts; and its comment step on plans of every size.
The jobs that reach gateways run against real sshd hosts: tests/e2e/test_ci_gateways.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.ci_runner import ARTIFACT_URL, WORKFLOW, Repository

COMMENT_LIMIT = 65_536  # characters GitHub accepts in one comment
SMALL_COMMENT = 40_000  # what the example promises, whatever the plan's size
CLUSTERS = 200
LINKS = CLUSTERS * (CLUSTERS - 1) // 2
MARKER = "<!-- skyplan-plan -->"


def mesh_config(clusters: int) -> str:
    lines = ["version: 1", "provider:", "  name: wireguard", "  address_pool: 100.96.0.0/16", "  ssh:", "    config: ssh_config", "clusters:"]
    for i in range(clusters):
        host = f"198.18.{i // 250}.{i % 250 + 1}"
        lines.append(f'  - {{name: site-{i:03d}, endpoint: "{host}:51820", gateway: "ssh://root@{host}", subnets: [10.{i // 100}.{i % 100}.0/24]}}')
    lines += ["meshes:", "  - name: core", "    clusters: [" + ", ".join(f"site-{i:03d}" for i in range(clusters)) + "]"]
    return "\n".join(lines) + "\n"


@pytest.mark.postgres
def test_a_pull_request_plans_a_200_gateway_mesh_in_one_small_comment_without_ssh(tmp_path, postgres_server):
    url = postgres_server.create_database()
    repo = Repository(tmp_path, url)
    repo.commit(mesh_config(CLUSTERS))

    # A plan of 20,100 resources, 3 MB as text: the comment holds the summary, the picture (the
    # mesh is one node) and the first 100 lines; the artifact holds all of it.
    first = repo.run_job("plan")
    [comment] = first.comments
    assert len(comment) < SMALL_COMMENT
    assert comment.startswith(f"{MARKER}\n### skyplan plan\n\n**Plan: {CLUSTERS + LINKS} to add, 0 to change, 0 to destroy.**")
    assert f"[skyplan-plan artifact]({ARTIFACT_URL.format(name='skyplan-plan')})" in comment
    assert "```mermaid\n---\ntitle: \"Plan:" in comment and f"mesh core ({CLUSTERS} clusters)" in comment
    lines = (first.folder / "plan.txt").read_text().count("\n")
    assert f"<summary>Compact plan ({lines} lines)</summary>" in comment
    assert f"... {lines - 100} more lines in the artifact." in comment
    assert "+ cluster.site-000" in comment and "+ cluster.site-099" in comment and "+ cluster.site-150" not in comment
    assert first.artifacts["skyplan-plan"] == ["plan-full.txt", "plan.json", "plan.mmd"]
    full = (first.folder / "plan-full.txt").read_text()
    assert len(full) > 40 * COMMENT_LIMIT  # all of it is there
    # Keys are born on the gateways: the plan cannot know them, and the runner made none.
    assert full.count("public_key           = (known after apply)") == CLUSTERS
    assert json.loads((first.folder / "plan.json").read_text())["summary"]["add"] == CLUSTERS + LINKS
    assert not (first.folder / ".skyplan" / "keys").exists() and not (first.folder / "wireguard").exists()
    # The pull request's runner had no SSH key and never tried the gateways.
    assert not repo.ssh_calls.exists()
    assert not (first.home / ".ssh").exists()


def _comment_step() -> dict:
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    return next(s for s in workflow["jobs"]["plan"]["steps"] if s.get("name") == "comment")


def _comment(tmp_path: Path, plan: str, mermaid: str) -> str:
    (tmp_path / "plan.txt").write_text(plan)
    (tmp_path / "plan.mmd").write_text(mermaid)
    step = _comment_step()
    env = {"PATH": os.environ["PATH"], **step["env"], "PLAN_URL": "https://github.example/artifact"}
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path, env=env, check=True, capture_output=True)
    return (tmp_path / "comment.md").read_text()


@pytest.mark.parametrize("edges", [10, 501])
def test_comment_leaves_out_a_picture_github_cannot_draw(tmp_path, edges):
    plan = "".join(f"  + link.l{i}\n" for i in range(20_000)) + "\nPlan: 20000 to add, 0 to change, 0 to destroy.\n"
    comment = _comment(tmp_path, plan, "flowchart LR\n" + "".join(f"  c_{i} --- c_{i + 1}\n" for i in range(edges)))
    assert len(comment) < SMALL_COMMENT
    assert comment.startswith(
        f"{MARKER}\n### skyplan plan\n\n**Plan: 20000 to add, 0 to change, 0 to destroy.** Full plan: [skyplan-plan artifact](https://github.example/artifact)\n"
    )
    assert ("```mermaid" in comment) == (edges <= 500)
    assert (f"_The picture ({edges} edges) is too large" in comment) == (edges > 500)
    # The first lines, whole, and how many more there are.
    body = comment[comment.index("<details>") :]
    assert "<summary>Compact plan (20002 lines)</summary>" in body
    lines = body.split("```\n")[1].splitlines()
    assert lines[-1] == "... 19902 more lines in the artifact."
    assert lines[:-1] == [f"  + link.l{i}" for i in range(100)]


def test_comment_stays_small_with_a_large_picture_and_long_lines(tmp_path):
    plan = "".join(f"  ~ link.{'x' * 5000}{i}\n" for i in range(300)) + "\nPlan: 0 to add, 300 to change, 0 to destroy.\n"
    picture = "flowchart LR\n" + "".join(f"  {'n' * 200}{i} --- m{i}\n" for i in range(200))  # 200 edges, 40 kB
    comment = _comment(tmp_path, plan, picture)
    assert len(comment) < SMALL_COMMENT
    assert "```mermaid" not in comment and "_The picture (200 edges) is too large" in comment
    lines = comment.split("```\n")[1].splitlines()
    assert len(lines) == 101 and all(len(line) <= 200 for line in lines)


def test_a_short_plan_is_posted_whole(tmp_path):
    plan = "  + cluster.a\n\nPlan: 1 to add, 0 to change, 0 to destroy.\n"
    comment = _comment(tmp_path, plan, "flowchart LR\n  a\n")
    assert "more lines in the artifact" not in comment
    assert comment.split("```\n")[-2] == plan  # the plan's block, every line of it


def test_the_check_names_failed_links_with_their_reason_and_gateways_that_do_not_answer(tmp_path):
    """The check job's report, from `skyctl get -o json` output as the gateways would give it
    (a link goes FAILED only after 180 s without a handshake: too slow to wait for here)."""
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    step = next(s for s in workflow["jobs"]["check"]["steps"] if s.get("name") == "drift and link health")
    script = step["run"].split("python3 - <<'EOF' > unwell.txt\n", 1)[1].split("\nEOF\n", 1)[0]

    def item(name, phase, conditions, reason=None):
        status = {"phase": phase, "conditions": conditions, **({"reason": reason} if reason else {})}
        return {"metadata": {"name": name}, "status": status}

    up = {"type": "InterfaceUp", "status": "True", "reason": "Probed", "message": "interface answers"}
    down = {"type": "InterfaceUp", "status": "False", "reason": "GatewayUnreachable", "message": "gateway b: unreachable: refused"}
    (tmp_path / "clusters.json").write_text(json.dumps({"items": [item("a", "ACTIVE", [up]), item("b", "INIT", [down])]}))
    links = [item("a-b", "FAILED", [], reason="a last shook hands with b 400s ago; no handshake for more than 180s"), item("a-c", "ACTIVE", [])]
    (tmp_path / "links.json").write_text(json.dumps({"items": links}))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "cluster b: gateway b: unreachable: refused",
        "link a-b: a last shook hands with b 400s ago; no handshake for more than 180s",
    ]
