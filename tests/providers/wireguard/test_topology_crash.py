"""Killed at any moment, an apply with preshared keys loses none: the next apply converges with
one key per peering, the same at both ends, unchanged for every peering that stayed."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from skyplan_wireguard import conf, keys
from tests.test_crash_safety import _env, run
from tests.workspaces import links_yaml

CLUSTERS = [(f"c{i:02d}", f"192.0.2.{i + 1}:51820", [f"10.{i}.0.0/16"]) for i in range(12)]
ALL_PAIRS = [(a, b) for i, (a, _, _) in enumerate(CLUSTERS) for (b, _, _) in CLUSTERS[i + 1 :]]
ROUNDS = 8


def version(round_number: int) -> tuple[str, set[frozenset]]:
    rng = random.Random(1000 + round_number)
    pairs = rng.sample(ALL_PAIRS, 30)
    links = [(f"{a}-{b}", a, b) for a, b in pairs]
    provider = "preshared_keys: true\non_change: [sleep, '0.5']"
    return links_yaml(CLUSTERS, links, provider=provider), {frozenset(pair) for pair in pairs}


def converged(workspace: Path, pairs: set[frozenset]) -> dict[frozenset, str]:
    plan = run(workspace, "plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    folder = workspace / ".skyplan/keys"
    stored = {frozenset(p.name.removesuffix(".psk").split("+")): p.read_text().strip() for p in folder.glob("*.psk")}
    assert set(stored) == pairs, "a key of a peering that ended is left, or a peering has none"
    public = {name: keys.public_key((folder / f"{name}.key").read_text().strip()) for name, _, _ in CLUSTERS}
    for name, _, _ in CLUSTERS:
        text = (workspace / f"wireguard/{name}/wgsky0.conf").read_text()
        parsed = conf.parse(text, {public[other]: stored[pair] for pair in pairs if name in pair for other in pair - {name}})
        for pair in pairs:
            if name in pair:
                (other,) = pair - {name}
                assert parsed.peers[public[other]].get("preshared_key") == "present", f"{name}'s key for {other}"
    assert not list(workspace.rglob("*.tmp")), "half-written files left"
    return stored


def test_random_sigkills_never_lose_or_split_a_preshared_key(tmp_path: Path) -> None:
    text, pairs = version(0)
    (tmp_path / "links.yaml").write_text(text)
    assert run(tmp_path, "apply", "--auto-approve").exit_code == 0
    stored = converged(tmp_path, pairs)
    rng = random.Random(20261201)
    killed_mid_apply = 0
    for round_number in range(1, ROUNDS + 1):
        text, new_pairs = version(round_number)
        (tmp_path / "links.yaml").write_text(text)
        process = subprocess.Popen(
            [sys.executable, "-m", "skyplan", "apply", "--auto-approve"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=_env(),
        )
        if round_number % 2:
            # Right after the k-th resource is done: files written, hooks and results under way.
            wanted, output = rng.randint(1, 3), ""
            while output.count("complete") < wanted and (line := process.stdout.readline()):
                output += line
            process.kill()
            output += process.communicate()[0]
        else:
            time.sleep(rng.uniform(0.3, 2.0))  # anywhere: before, while or after files are written
            process.kill()
            output, _ = process.communicate()
        if "complete" in output and "Apply complete!" not in output:
            killed_mid_apply += 1
        # A hook the killed run had just forked may hold its lock for a moment (until exec).
        apply = run(tmp_path, "apply", "--auto-approve", "--lock-timeout", "10s")
        assert apply.exit_code == 0, f"round {round_number}: {apply.output}"
        now = converged(tmp_path, new_pairs)
        # Named by peering, never by value: a failure report shows no key.
        changed = sorted(sorted(p) for p in pairs & new_pairs if now[p] != stored[p])
        assert changed == [], f"round {round_number}: the keys of peerings that stayed changed"
        stored, pairs = now, new_pairs
    # The kills must really land inside applies, not only before or after them.
    assert killed_mid_apply >= ROUNDS // 2, killed_mid_apply
