"""Killed at any moment, an apply loses nothing: the next plan and apply converge, keys stay.

Real runs (`python -m skyplan apply`) are SIGKILLed at random moments while an `on_change`
hook slows them down; after each kill, one more apply must converge with every key unchanged.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from skyplan_wireguard import conf, keys
from tests.workspaces import links_yaml

CLUSTERS = [(f"c{i:02d}", f"192.0.2.{i + 1}:51820", [f"10.{i}.0.0/16"]) for i in range(40)]
ALL_PAIRS = [(a, b) for i, (a, _, _) in enumerate(CLUSTERS) for (b, _, _) in CLUSTERS[i + 1 :]]
ROUNDS = 20


def version(round_number: int) -> tuple[str, dict[str, set[str]]]:
    """The configuration for a round (200 links, a different 10% each round) and its peering."""
    rng = random.Random(round_number)
    pairs = rng.sample(ALL_PAIRS, 200)
    clusters = list(CLUSTERS)
    if round_number % 3 == 1:  # some rounds move an endpoint too, so every peer file changes
        name, endpoint, subnets = clusters[round_number % 40]
        clusters[round_number % 40] = (name, endpoint.replace(":51820", ":51821"), subnets)
    links = [(f"{a}-{b}", a, b) for a, b in pairs]
    provider = "on_change: [sleep, '0.01']"
    peers: dict[str, set[str]] = {name: set() for name, _, _ in CLUSTERS}
    for _, a, b in links:
        peers[a].add(b)
        peers[b].add(a)
    return links_yaml(clusters, links, provider=provider), peers


def run(workspace: Path, *args: str):
    """The CLI in this process (the runs that get killed are real processes)."""
    from click.testing import CliRunner

    from skyplan.cli.skyplan_cmd import main

    previous = os.getcwd()
    os.chdir(workspace)
    try:
        return CliRunner().invoke(main, list(args), catch_exceptions=False, env={"NO_COLOR": "1"})
    finally:
        os.chdir(previous)


def _env() -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("SKYPLAN_BACKEND", None)
    return env


def check_converged(workspace: Path, peers: dict[str, set[str]], first_keys: dict[str, str]) -> None:
    plan = run(workspace, "plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    public = {}
    for name in peers:
        private = (workspace / f".skyplan/keys/{name}.key").read_text().strip()
        assert private == first_keys[name], f"key of {name} changed"
        public[name] = keys.public_key(private)
    for name, expected in peers.items():
        parsed = conf.parse((workspace / f"wireguard/{name}/wgsky0.conf").read_text())
        assert parsed.interface["public_key"] == public[name]
        assert set(parsed.peers) == {public[p] for p in expected}, f"peers of {name}"
    leftovers = [p for p in workspace.rglob("*.tmp")]
    assert leftovers == [], f"half-written files left: {leftovers}"


def test_random_sigkills_during_apply_always_converge(tmp_path: Path):
    workspace = tmp_path
    text, peers = version(0)
    (workspace / "links.yaml").write_text(text)
    first = run(workspace, "apply", "--auto-approve")
    assert first.exit_code == 0, first.output
    first_keys = {name: (workspace / f".skyplan/keys/{name}.key").read_text().strip() for name in peers}
    check_converged(workspace, peers, first_keys)

    rng = random.Random(20261124)
    killed_mid_apply = 0
    for round_number in range(1, ROUNDS + 1):
        text, peers = version(round_number)
        (workspace / "links.yaml").write_text(text)
        process = subprocess.Popen(
            [sys.executable, "-m", "skyplan", "apply", "--auto-approve"],
            cwd=workspace,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(),
        )
        # Killed a random moment after the plan is shown, when the apply has begun: on a busy
        # machine a fixed delay from the start may end the process before it applies anything.
        shown = []
        for line in process.stdout:
            shown.append(line)
            if line.startswith("Plan:"):
                break
        time.sleep(rng.uniform(0.0, 0.6))
        process.kill()
        output, _ = process.communicate()
        output = "".join(shown) + output
        if "Creation complete" in output or "Destruction complete" in output or "Modifications complete" in output:
            killed_mid_apply += 1

        # A hook that the killed run had just forked holds its lock until it execs (its copy of
        # the descriptor closes then): on a busy machine, a moment after the kill.
        plan = run(workspace, "plan", "--lock-timeout", "10s")
        assert plan.exit_code == 0, f"round {round_number}: {plan.output}"
        apply = run(workspace, "apply", "--auto-approve")
        assert apply.exit_code == 0, f"round {round_number}: {apply.output}"
        check_converged(workspace, peers, first_keys)
    # The kills must really land inside applies, not only before or after them.
    assert killed_mid_apply >= 3, f"only {killed_mid_apply} kills landed while resources were being applied"
