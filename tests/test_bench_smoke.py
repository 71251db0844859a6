"""The benchmark runs end to end on a tiny workspace; it prints numbers, so nothing here is timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
