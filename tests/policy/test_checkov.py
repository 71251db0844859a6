"""checkov's terraform_plan framework, with the custom check in examples/policies/checkov, on a real plan."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.policy.conftest import POLICIES


def run_checkov(checkov_bin: Path, plan: dict, folder: Path) -> tuple[int, dict]:
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    argv = [
        str(checkov_bin), "-f", str(path), "--framework", "terraform_plan",
        "--external-checks-dir", str(POLICIES / "checkov"), "--check", "CKV2_SKY_1",
        "-o", "json", "--quiet", "--skip-download",
    ]
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--net", "--", *argv]  # no network at all: it must work offline
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "NO_COLOR": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=folder, timeout=300)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_checkov_finds_the_cluster_on_the_wrong_port(review_plan, checkov_bin, tmp_path):
    code, report = run_checkov(checkov_bin, review_plan, tmp_path)
    assert code == 1  # a failed check fails the CI step
    failed = sorted(c["resource"] for c in report["results"]["failed_checks"])
    assert failed == ["cluster.eu-central", "cluster.new-site"]
    # It checked every cluster that will exist (planned_values), not nothing.
    assert report["summary"]["resource_count"] == 5
    assert report["summary"]["passed"] == 1  # us-west
    assert report["summary"]["parsing_errors"] == 0


def test_without_terraform_keys_checkov_would_check_nothing(review_plan, checkov_bin, tmp_path):
    # Why the keys matter: the same plan without them reads as a silent pass.
    stripped = {k: v for k, v in review_plan.items() if k not in ("planned_values", "terraform_version")}
    code, report = run_checkov(checkov_bin, stripped, tmp_path)
    assert code == 0
    # checkov then prints only a summary: nothing checked, nothing failed, exit 0.
    assert (report["resource_count"], report["passed"], report["failed"]) == (0, 0, 0)
