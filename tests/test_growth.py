"""Work per apply and plan grows with clusters and checkpoints, not with links (no timing here).

Files are counted at the system calls every atomic write and read goes through (`os.replace` puts
each file in place, `os.open`, `os.fsync`), not at skyplan's own helpers, so that a new way of
batching or reading files is still counted.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from skyplan.state.local import FileStateStore
from skyplan_wireguard import conf
from tests.workspaces import links_yaml

CLUSTERS = [(f"c{i:02d}", f"192.0.2.{i + 1}:51820", [f"10.{i}.0.0/16"]) for i in range(30)]
PAIRS = [(a[0], b[0]) for i, a in enumerate(CLUSTERS) for b in CLUSTERS[i + 1 :]]
SYSTEM_CALLS = ("open", "replace", "fsync")


def write_config(workspace: Path, links: int, preshared_keys: bool = False) -> None:
    chosen = [(f"{a}-{b}", a, b) for a, b in PAIRS[:links]]
    (workspace / "links.yaml").write_text(links_yaml(CLUSTERS, chosen, provider="preshared_keys: true" if preshared_keys else ""))


class Counted:
    """System calls, files put in place (by name) and state writes while a command runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []  # list.append is atomic: the writer's threads count too
        self.placed: list[str] = []
        self.state_writes = 0
        for name in SYSTEM_CALLS:
            real = getattr(os, name)

            def counting(*args, _real=real, _name=name, **kwargs):
                self.calls.append(_name)
                if _name == "replace":
                    self.placed.append(os.path.basename(os.fspath(args[1])))
                return _real(*args, **kwargs)

            monkeypatch.setattr(os, name, counting)
        write_state = FileStateStore.write

        def counting_write_state(store, state):
            self.state_writes += 1
            return write_state(store, state)

        monkeypatch.setattr(FileStateStore, "write", counting_write_state)

    def of(self, name: str) -> int:
        return Counter(self.calls)[name]

    def placed_with(self, suffix: str) -> int:
        return sum(1 for name in self.placed if name.endswith(suffix))


def run_counted(monkeypatch: pytest.MonkeyPatch, skyplan, *args: str) -> Counted:
    with monkeypatch.context() as patch:
        counted = Counted(patch)
        result = skyplan(*args)
    assert result.exit_code == 0, result.output
    return counted


@pytest.mark.parametrize("links", [100, 400])
def test_apply_work_is_linear(tmp_path, monkeypatch, skyplan, links):
    monkeypatch.chdir(tmp_path)
    renders = 0
    render = conf.render

    def counting_render(*args):
        nonlocal renders
        renders += 1
        return render(*args)

    monkeypatch.setattr(conf, "render", counting_render)
    write_config(tmp_path, links)
    started = time.monotonic()
    counted = run_counted(monkeypatch, skyplan, "apply", "--auto-approve")
    seconds = time.monotonic() - started
    assert renders == len(CLUSTERS), "one render per cluster, however many links"
    assert (counted.placed_with(".conf"), counted.placed_with(".key")) == (len(CLUSTERS), len(CLUSTERS)), "one key and one config per cluster"
    # Intent, final, and at most one checkpoint per second of applying: never one per resource.
    assert counted.state_writes <= 2 + int(seconds) + 1
    # Besides those: the state files (state.json, its backup) and the validated-config cache.
    others = [name for name in counted.placed if not name.endswith((".conf", ".key"))]
    assert len(others) <= 2 * counted.state_writes + 2, others


# Per link added: without preshared keys nothing; with them, one key file per peering, which the
# apply writes (one replace, one fsync) and the plan reads, through a few opens each.
PER_LINK = {False: {"open": 0, "replace": 0, "fsync": 0}, True: {"open": 5, "replace": 1, "fsync": 1}}


@pytest.mark.parametrize("preshared_keys", [False, True], ids=["plain", "preshared-keys"])
def test_more_links_over_the_same_clusters_cost_no_more_file_work(tmp_path, monkeypatch, skyplan, preshared_keys):
    """Apply, no-change plan and the plan of a just-edited file, at 100 and at 400 links over the same
    30 clusters: the 300 links more add fewer system calls than one per cluster (besides what each
    preshared key file costs, and what a checkpoint more of a slower apply costs)."""
    counts: dict[int, dict[str, Counted]] = {}
    for links in (100, 400):
        workspace = tmp_path / f"{links}-links"
        workspace.mkdir()
        monkeypatch.chdir(workspace)
        write_config(workspace, links, preshared_keys)
        apply = run_counted(monkeypatch, skyplan, "apply", "--auto-approve")
        plan = run_counted(monkeypatch, skyplan, "plan")
        with (workspace / "links.yaml").open("a") as out:
            out.write("# edited: the validated-config cache misses\n")
        cold = run_counted(monkeypatch, skyplan, "plan")
        counts[links] = {"apply": apply, "no-change plan": plan, "cold plan": cold}
    added = 300
    for command in ("apply", "no-change plan", "cold plan"):
        few, many = counts[100][command], counts[400][command]
        checkpoints = max(0, many.state_writes - few.state_writes)  # each a handful of calls
        for call in SYSTEM_CALLS:
            allowed = PER_LINK[preshared_keys][call] * added + len(CLUSTERS) + 10 * checkpoints
            grown = many.of(call) - few.of(call)
            assert grown < allowed, f"{command}: os.{call} {few.of(call)} at 100 links, {many.of(call)} at 400 (allowed growth {allowed})"
