"""An apply of more clusters than the soft limit on open files allows still writes every file."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from tests.workspaces import links_yaml

CLUSTERS = [(f"c{i:03d}", f"192.0.2.{i % 250 + 1}:{51820 + i}", [f"10.{i}.0.0/16"]) for i in range(150)]
LINKS = [(f"l{i:03d}", f"c{i:03d}", f"c{(i + 1) % 150:03d}") for i in range(150)]


def test_a_fleet_beyond_a_low_soft_limit_of_open_files_applies(tmp_path: Path) -> None:
    (tmp_path / "links.yaml").write_text(links_yaml(CLUSTERS, LINKS))

    def low_soft_limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, hard))  # fewer than the clusters' folders

    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYPLAN_")}
    done = subprocess.run(
        [sys.executable, "-m", "skyplan", "apply", "--auto-approve"],
        cwd=tmp_path, env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, preexec_fn=low_soft_limit, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Apply complete! Resources: 300 added" in done.stdout
    assert len(list(tmp_path.glob("wireguard/*/wgsky0.conf"))) == 150
