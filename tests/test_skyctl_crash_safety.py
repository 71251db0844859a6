"""A killed skyctl create or delete is finished by the next run that touches it, never stranded.

Real `skyctl` processes are SIGKILLed while their `on_change` hook blocks (the hook writes a
marker, then waits for a file to go away). Each interruption is then finished twice, in two
copies of the workspace: by repeating the skyctl command and, separately, by `skyplan apply`.
Both must converge: every config holds exactly the right peers, the state holds no pending mark,
and no key was generated again. Before that, `skyctl get` must say what is pending.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from skyplan_wireguard import conf, keys

A, B = ("a", "192.0.2.1:51820", "10.1.0.0/16"), ("b", "192.0.2.2:51820", "10.2.0.0/16")

# skyctl as its console script runs it.
SKYCTL = "import sys; sys.argv[0] = 'skyctl'; from skyplan.cli.entry import skyctl; skyctl()"

# No cluster delete runs a hook (its files are removed, no peer changes): this run is held just
# after the provider removed the cluster's files, before the result is recorded.
SKYCTL_HELD_AFTER_REMOVE = """
import os, sys, time
from skyplan_wireguard.provider import WireGuardProvider
remove = WireGuardProvider._remove_cluster
def held(self, cluster):
    error = remove(self, cluster)
    open({marker!r}, "w").close()
    while os.path.exists({hold!r}):
        time.sleep(0.02)
    return error
WireGuardProvider._remove_cluster = held
sys.argv[0] = "skyctl"
from skyplan.cli.entry import skyctl
skyctl()
"""


class Site:
    """A workspace whose on_change hook blocks while `hold` exists, and the folder that controls it."""

    def __init__(self, root: Path):
        self.control = root / "control"
        self.control.mkdir()
        self.hold = self.control / "hold"
        self.ws = root / "ws"
        self.ws.mkdir()
        hook = f"touch {self.control}/started-{{{{ cluster }}}}; while [ -e {self.hold} ]; do sleep 0.02; done"
        (self.ws / "links.yaml").write_text(
            "version: 1\nprovider:\n  name: wireguard\n  on_change: [sh, -c, " + json.dumps(hook) + "]\n"
        )

    def copy(self, name: str) -> Path:
        target = self.ws.with_name(name)
        shutil.copytree(self.ws, target, symlinks=True)
        return target

    def kill_during(self, *args: str, marker: str, program: str = SKYCTL) -> None:
        """Run `skyctl ARGS` for real; SIGKILL it once `marker` shows it is inside its apply."""
        for old in self.control.glob("*"):
            old.unlink()  # markers of the hooks that earlier, unheld runs ran
        self.hold.touch()
        started = self.control / marker
        env = dict(os.environ, NO_COLOR="1")
        env.pop("SKYPLAN_BACKEND", None)
        env.pop("SKYPLAN_CONFIG", None)
        # A session of its own, so the hook it leaves behind can be ended by its group id.
        process = subprocess.Popen(
            [sys.executable, "-c", program, *args],
            cwd=self.ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 20
            while not started.exists():
                if process.poll() is not None:
                    pytest.fail(f"skyctl {' '.join(args)} ended before it was killed: {process.stdout.read()}")
                assert time.monotonic() < deadline, "the hook never started"
                time.sleep(0.01)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        finally:
            self.hold.unlink()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.stdout.close()
        assert process.returncode == -signal.SIGKILL


def run(folder: Path, cli: str, *args: str):
    """skyctl or skyplan in this process, in `folder` (only the killed runs need processes)."""
    if cli == "skyctl":
        from skyplan.cli.skyctl_cmd import main
    else:
        from skyplan.cli.skyplan_cmd import main
    previous = os.getcwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(main, list(args), catch_exceptions=False, env={"NO_COLOR": "1"})
    finally:
        os.chdir(previous)


def create_cluster(folder: Path, cluster: tuple[str, str, str]):
    name, endpoint, subnet = cluster
    return run(folder, "skyctl", "create", "cluster", name, "--endpoint", endpoint, "--subnet", subnet)


def state(folder: Path) -> dict:
    return json.loads((folder / ".skyplan/state.json").read_text())


def key_bytes(folder: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((folder / ".skyplan/keys").glob("*.key"))}


def check_converged(folder: Path, peers: dict[str, set[str]], first_keys: dict[str, bytes]) -> None:
    """Only the clusters of `peers` exist, each config holds exactly those peers, and every
    key is the one it had before the kill."""
    recorded = state(folder)
    assert [(r["type"], r["name"], r["pending"]) for r in recorded["resources"] if r["pending"]] == []
    assert recorded["interrupted"] is None
    assert {r["name"] for r in recorded["resources"] if r["type"] == "cluster"} == set(peers)
    assert key_bytes(folder) == {name: first_keys[name] for name in peers}, "a key was generated again or lost"
    public = {name: keys.public_key(first_keys[name].decode().strip()) for name in peers}
    for name, expected in peers.items():
        parsed = conf.parse((folder / f"wireguard/{name}/wgsky0.conf").read_text())
        assert parsed.interface["public_key"] == public[name]
        assert set(parsed.peers) == {public[p] for p in expected}, f"peers of {name}"
    for gone in {"a", "b"} - set(peers):
        assert not (folder / f"wireguard/{gone}").exists()
    plan = run(folder, "skyplan", "plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


def check_shown_pending(folder: Path, kind: str, name: str, verb: str) -> None:
    table = run(folder, "skyctl", "get", kind)
    assert table.exit_code == 0, table.output
    row = next(line.split() for line in table.output.splitlines() if line.split()[0] == name)
    assert "PENDING" in row, table.output
    shown = json.loads(run(folder, "skyctl", "get", kind, name, "-o", "json").output)
    assert shown["status"]["phase"] == "PENDING"
    [condition] = shown["status"]["conditions"]
    assert condition["reason"] == "ApplyInterrupted"
    assert f"an interrupted {verb} of it did not finish" in condition["message"]


def finish_with_skyplan(folder: Path, finishing: str) -> None:
    plan = run(folder, "skyplan", "plan")
    assert plan.exit_code == 0, plan.output
    assert finishing in plan.output, plan.output
    assert "No changes" not in plan.output
    apply = run(folder, "skyplan", "apply", "--auto-approve")
    assert apply.exit_code == 0, apply.output
    assert "Apply complete!" in apply.output


def test_killed_create_cluster_is_finished_by_a_retry_a_link_or_skyplan(tmp_path: Path):
    site = Site(tmp_path)
    assert create_cluster(site.ws, B).exit_code == 0
    site.kill_during("create", "cluster", *("a", "--endpoint", A[1], "--subnet", A[2]), marker="started-a")
    first_keys = key_bytes(site.ws)
    assert set(first_keys) == {"a", "b"}  # the key was written before the hook ran
    check_shown_pending(site.ws, "cluster", "a", "create")
    linked, planned, other = site.copy("linked"), site.copy("planned"), site.copy("other")

    # Asked differently, the create neither goes on nor changes anything; it says what is pending.
    before = (other / ".skyplan/state.json").read_bytes()
    refused = run(other, "skyctl", "create", "cluster", "a", "--endpoint", "192.0.2.9:51820", "--subnet", A[2])
    assert refused.exit_code == 1
    assert "Cluster 'a' already exists, unfinished: an interrupted create of it with endpoint 192.0.2.1:51820" in refused.output
    assert (other / ".skyplan/state.json").read_bytes() == before

    retry = create_cluster(site.ws, A)
    assert retry.exit_code == 0, retry.output
    assert retry.output.endswith("Created cluster a.\n")
    check_converged(site.ws, {"a": set(), "b": set()}, first_keys)
    assert run(site.ws, "skyctl", "create", "link", "x", "-s", "a", "-t", "b").exit_code == 0
    check_converged(site.ws, {"a": {"b"}, "b": {"a"}}, first_keys)

    # A link to the half-made cluster finishes it first, in the same apply.
    link = run(linked, "skyctl", "create", "link", "x", "-s", "a", "-t", "b")
    assert link.exit_code == 0, link.output
    assert "+ cluster.a  (an interrupted apply did not finish creating it)" in link.output
    assert link.output.endswith("Created link x.\n")
    check_converged(linked, {"a": {"b"}, "b": {"a"}}, first_keys)

    finish_with_skyplan(planned, "# cluster.a will be created\n  # (an interrupted apply did not finish creating it)")
    check_converged(planned, {"a": set(), "b": set()}, first_keys)
    assert [r["managed_by"] for r in state(planned)["resources"]] == ["skyctl", "skyctl"]
    link = run(planned, "skyctl", "create", "link", "x", "-s", "a", "-t", "b")
    assert link.exit_code == 0, link.output
    check_converged(planned, {"a": {"b"}, "b": {"a"}}, first_keys)


def test_killed_create_link_is_finished_by_a_retry_or_skyplan(tmp_path: Path):
    site = Site(tmp_path)
    assert create_cluster(site.ws, A).exit_code == 0 and create_cluster(site.ws, B).exit_code == 0
    first_keys = key_bytes(site.ws)
    site.kill_during("create", "link", "x", "-s", "a", "-t", "b", marker="started-a")
    check_shown_pending(site.ws, "link", "x", "create")
    planned = site.copy("planned")

    refused = run(site.ws, "skyctl", "create", "link", "x", "-s", "b", "-t", "a")
    assert refused.exit_code == 1 and "already exists, unfinished" in refused.output
    retry = run(site.ws, "skyctl", "create", "link", "x", "-s", "a", "-t", "b")
    assert retry.exit_code == 0, retry.output
    assert retry.output.endswith("Created link x.\n")
    check_converged(site.ws, {"a": {"b"}, "b": {"a"}}, first_keys)

    finish_with_skyplan(planned, "# link.x will be created")
    check_converged(planned, {"a": {"b"}, "b": {"a"}}, first_keys)
    assert run(planned, "skyctl", "get", "link", "x", "-o", "json").exit_code == 0


def test_killed_delete_link_is_finished_by_a_retry_or_skyplan(tmp_path: Path):
    site = Site(tmp_path)
    assert create_cluster(site.ws, A).exit_code == 0 and create_cluster(site.ws, B).exit_code == 0
    assert run(site.ws, "skyctl", "create", "link", "x", "-s", "a", "-t", "b").exit_code == 0
    first_keys = key_bytes(site.ws)
    site.kill_during("delete", "link", "x", marker="started-a")
    check_shown_pending(site.ws, "link", "x", "delete")
    planned, joined = site.copy("planned"), site.copy("joined")

    retry = run(site.ws, "skyctl", "delete", "link", "x")
    assert retry.exit_code == 0, retry.output
    assert retry.output.endswith("Deleted link x.\n")
    check_converged(site.ws, {"a": set(), "b": set()}, first_keys)
    assert "link.x" not in {f"{r['type']}.{r['name']}" for r in state(site.ws)["resources"]}

    # Deleting a cluster that only the half-deleted link still joins finishes that delete first.
    cluster = run(joined, "skyctl", "delete", "cluster", "a")
    assert cluster.exit_code == 0, cluster.output
    assert "- link.x  (an interrupted apply did not finish deleting it)" in cluster.output
    check_converged(joined, {"b": set()}, first_keys)

    finish_with_skyplan(planned, "# link.x will be destroyed")
    assert "Changed outside skyplan" not in run(planned, "skyplan", "plan").output
    check_converged(planned, {"a": set(), "b": set()}, first_keys)


def test_killed_delete_cluster_is_finished_by_a_retry_or_skyplan(tmp_path: Path):
    site = Site(tmp_path)
    assert create_cluster(site.ws, A).exit_code == 0 and create_cluster(site.ws, B).exit_code == 0
    first_keys = key_bytes(site.ws)
    program = SKYCTL_HELD_AFTER_REMOVE.format(marker=str(site.control / "removed"), hold=str(site.hold))
    site.kill_during("delete", "cluster", "a", marker="removed", program=program)
    assert not (site.ws / ".skyplan/keys/a.key").exists()  # the worst moment: files gone, state not told
    check_shown_pending(site.ws, "cluster", "a", "delete")
    planned = site.copy("planned")

    # A half-deleted cluster is neither linked to nor created again until its delete is finished.
    before = (site.ws / ".skyplan/state.json").read_bytes()
    link = run(site.ws, "skyctl", "create", "link", "y", "-s", "a", "-t", "b")
    assert link.exit_code == 1
    assert "Source cluster 'a' is being deleted: an interrupted delete of it did not finish" in link.output
    again = create_cluster(site.ws, A)
    assert again.exit_code == 1 and "Cluster 'a' is being deleted" in again.output
    assert (site.ws / ".skyplan/state.json").read_bytes() == before

    retry = run(site.ws, "skyctl", "delete", "cluster", "a")
    assert retry.exit_code == 0, retry.output
    assert retry.output.endswith("Deleted cluster a.\n")
    check_converged(site.ws, {"b": set()}, first_keys)

    # The missing key and config are the delete's own work: no drift, no replace, no new key.
    plan = run(planned, "skyplan", "plan")
    assert "Changed outside skyplan" not in plan.output and "replaced" not in plan.output, plan.output
    finish_with_skyplan(planned, "# cluster.a will be destroyed")
    check_converged(planned, {"b": set()}, first_keys)
