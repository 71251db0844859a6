"""The benchmark runs end to end on a tiny workspace; it prints numbers, so nothing here is timed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OPERATIONS = (
    "skyplan validate",
    "skyplan apply (from empty)",
    "skyplan plan (no change)",
    "skyctl get link",
    "skyctl create link",
    "skyctl delete link",
)


def test_quick_bench_completes_and_prints_its_table(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--sizes", "50", "--repeat", "1", "--no-terraform", "--workdir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    header = next(line for line in done.stdout.splitlines() if line.startswith("operation"))
    assert header.split() == [
        "operation", "links", "clusters", "runs", "median", "s", "min", "s", "max", "s", "cpu", "s", "peak", "MB", "target", "result"
    ]
    # Each operation ran once and passed the bench's own checks (configs written, no changes, ...);
    # a failed check leaves 0 runs and the problem in the result column.
    for operation in OPERATIONS:
        row = next(line for line in done.stdout.splitlines() if line.startswith(operation + "  "))
        links, clusters, runs, *_ = row[len(operation):].split()
        assert (links, runs) == ("50", "1"), row


@pytest.mark.e2e
def test_gateway_bench_applies_plans_and_changes_one_link_on_two_gateways(tmp_path):
    """Three real gateways (sshd in namespaces); Ansible left out here, as it installs from PyPI."""
    from tests.e2e.gateways import missing_gateway_prerequisites

    missing = missing_gateway_prerequisites()
    if missing:
        pytest.fail("the gateway bench needs, and this machine lacks:\n  - " + "\n  - ".join(missing), pytrace=False)
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench.gateways", "--gateways", "3", "--no-ansible", "--workdir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = bench.communicate(timeout=300)
    assert bench.returncode == 0, stderr
    lines = stdout.splitlines()
    header = re.split(r"\s{2,}", next(line for line in lines if line.startswith("tool ")))

    def row(run: str) -> dict[str, str]:
        line = next(line for line in lines if re.match(rf"skyplan\s+{run}\s", line))
        return dict(zip(header, re.split(r"\s{2,}", line.strip())))

    first, plan, change = row("first apply"), row("no-change run"), row("one-link change")
    # Each run passed the bench's own checks (every interface up, one peer per link, a route for
    # every AllowedIPs entry) and wrote configs on all 3 gateways, then on none, then on the new
    # link's two ends only.
    assert [r.get("check") for r in (first, plan, change)] == ["ok", "ok", "ok"], stdout
    assert [r.get("written") for r in (first, plan, change)] == ["3", "0", "2"]
    # The keys were made on the gateways: none of them is in any file of the workspace.
    assert [r.get("keys here") for r in (first, plan, change)] == ["0/3", "0/3", "0/3"]
    assert (first["command"], plan["command"], change["command"]) == ("skyplan apply", "skyplan plan", "skyplan apply")
    assert "skyplan: config written on g01, g03;" in stdout
    # The lab is gone: no namespace of the bench's process is left.
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"skye2e-{bench.pid}-" not in left
