"""Work per apply grows with clusters and checkpoints, not with links squared (no timing here)."""

from __future__ import annotations

import time

import pytest

from skyplan import atomic
from skyplan.state.local import FileStateStore
from skyplan_wireguard import conf
from tests.workspaces import links_yaml

CLUSTERS = [(f"c{i:02d}", f"192.0.2.{i + 1}:51820", [f"10.{i}.0.0/16"]) for i in range(30)]
PAIRS = [(a[0], b[0]) for i, a in enumerate(CLUSTERS) for b in CLUSTERS[i + 1 :]]


def count_work(workspace, skyplan, monkeypatch, links: int) -> dict[str, int]:
    counts = {"renders": 0, "files": 0, "state_writes": 0}
    render, add_file, write_state = conf.render, atomic.Batch.add, FileStateStore.write

    def counting_render(*args):
        counts["renders"] += 1
        return render(*args)

    def counting_add_file(batch, *args, **kwargs):
        counts["files"] += 1
        return add_file(batch, *args, **kwargs)

    def counting_write_state(self, state):
        counts["state_writes"] += 1
        return write_state(self, state)

    monkeypatch.setattr(conf, "render", counting_render)
    monkeypatch.setattr(atomic.Batch, "add", counting_add_file)
    monkeypatch.setattr(FileStateStore, "write", counting_write_state)
    chosen = [(f"{a}-{b}", a, b) for a, b in PAIRS[:links]]
    (workspace / "links.yaml").write_text(links_yaml(CLUSTERS, chosen))
    started = time.monotonic()
    assert skyplan("apply", "--auto-approve").exit_code == 0
    counts["seconds"] = time.monotonic() - started
    return counts


@pytest.mark.parametrize("links", [100, 400])
def test_apply_work_is_linear(tmp_path, monkeypatch, skyplan, links):
    monkeypatch.chdir(tmp_path)
    counts = count_work(tmp_path, skyplan, monkeypatch, links)
    assert counts["renders"] == len(CLUSTERS), "one render per cluster, however many links"
    assert counts["files"] == 2 * len(CLUSTERS), "one key and one config per cluster"
    # Intent, final, and at most one checkpoint per second of applying: never one per resource.
    assert counts["state_writes"] <= 2 + int(counts["seconds"]) + 1
