"""The CI example's jobs that reach gateways, on fresh runners (tests/ci_runner.py) against real
sshd gateways in network namespaces: the deploy key and host keys come from secrets, the ssh
config from the repository, the state from PostgreSQL, and no WireGuard key is ever on a runner.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.ci_runner import Repository, public_keys, recorded

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_fresh_runners_apply_to_real_gateways_and_hold_no_wireguard_key(tmp_path, postgres_server, gateway_lab):
    lab = gateway_lab
    url = postgres_server.create_database()
    repo = Repository(tmp_path / "repo", url)
    repo.secrets["SKYPLAN_SSH_KEY"] = (lab.workdir / "client_key").read_text()
    repo.secrets["SKYPLAN_KNOWN_HOSTS"] = lab.known_hosts.read_text()

    def config(*links: tuple[str, str]) -> str:
        clusters = "".join(
            f'  - {{name: {g}, endpoint: "{lab.endpoint(g)}", gateway: "{lab.url(g)}"}}\n' for g in ("a", "b", "c")
        )
        body = "".join(f"  - {{name: {s}-{t}, source: {s}, target: {t}}}\n" for s, t in links)
        return "version: 1\nprovider:\n  name: wireguard\n  ssh:\n    config: ssh_config\nclusters:\n" + clusters + "links:\n" + body

    repo.commit(config(("a", "b")))
    review = repo.run_job("plan")
    assert "**Plan: 4 to add, 0 to change, 0 to destroy.**" in review.comments[0]
    assert not repo.ssh_calls.exists(), "a pull request never reaches the gateways"

    merged = repo.run_job("apply", ssh_from=lab.bin_dir)
    assert "Apply complete! Resources: 4 added, 0 changed, 0 destroyed." in merged.logs[-2]
    state = recorded(url)
    keys = public_keys(state)
    for gateway in ("a", "b", "c"):
        # Born on the gateway, 0600, and the state knows only its public half.
        private = lab.run(gateway, ["cat", "/etc/wireguard/wgsky0.key"]).stdout.strip()
        assert lab.run(gateway, ["stat", "-c", "%a", "/etc/wireguard/wgsky0.key"]).stdout.strip() == "600"
        derived = subprocess.run(["wg", "pubkey"], input=private + "\n", capture_output=True, text=True, check=True).stdout.strip()
        assert keys[gateway] == derived
        # Nowhere on the controller: not in the runner's clone or home, the repository, the lab's
        # client side, or anything else this test made.
        found = subprocess.run(["grep", "-rlF", "--", private, str(tmp_path)], capture_output=True, text=True)
        assert found.stdout == "", f"{gateway}'s private key found on the controller: {found.stdout}"
        assert private not in json.dumps(state) and all(private not in log for log in merged.logs)
    assert not (merged.folder / ".skyplan" / "keys").exists() and not (merged.folder / "wireguard").exists()
    assert lab.wg_dump("a").peers.keys() == {keys["b"]} and lab.wg_dump("c").peers == {}
    # The deploy key does not outlive the job on the runner.
    assert not (merged.home / ".ssh" / "skyplan_gateways").exists()

    # Unchanged: the review plans nothing; the hourly check finds no drift and every gateway answering.
    assert (repo.run_job("plan").folder / "plan.txt").read_text().startswith("No changes.")
    healthy = repo.run_job("check", ssh_from=lab.bin_dir)
    summary = healthy.summary.read_text()
    assert "No drift." in summary and "Every gateway answers; no link has failed." in summary

    # Someone takes b's interface down by hand: the check fails and says so; apply puts it right.
    lab.run("b", ["wg-quick", "down", "wgsky0"])
    broken = repo.run_job("check", ssh_from=lab.bin_dir, may_fail="drift and link health")
    assert broken.failed == "drift and link health"
    summary = broken.summary.read_text()
    assert "cluster.b" in summary and "No drift." not in summary
    assert "cluster b: " in summary
    repaired = repo.run_job("apply", ssh_from=lab.bin_dir)
    assert "Apply complete!" in repaired.logs[-2]
    assert lab.wg_dump("b").peers.keys() == {keys["a"]}
    assert public_keys(recorded(url)) == keys, "a repair never makes a new key"

    # b's sshd stops: nothing to plan from there, but the check fails and names the gateway.
    lab.stop_sshd("b")
    unreachable = repo.run_job("check", ssh_from=lab.bin_dir, may_fail="drift and link health")
    assert unreachable.failed == "drift and link health"
    summary = unreachable.summary.read_text()
    assert f"cluster b: gateway {lab.url('b')}: unreachable: " in summary
    lab.start_sshd("b")

    # The next merge links b and c: only those two gateways change.
    repo.commit(config(("a", "b"), ("b", "c")))
    grown = repo.run_job("apply", ssh_from=lab.bin_dir)
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in grown.logs[-2]
    assert lab.wg_dump("c").peers.keys() == {keys["b"]}
    assert lab.wg_dump("b").peers.keys() == {keys["a"], keys["c"]}


def test_a_wrong_host_key_in_the_secret_stops_the_apply_and_changes_nothing(tmp_path, postgres_server, gateway_lab):
    lab = gateway_lab
    repo = Repository(tmp_path / "repo", postgres_server.create_database())
    repo.secrets["SKYPLAN_SSH_KEY"] = (lab.workdir / "client_key").read_text()
    # a's address with b's host key: what a machine in the middle would show.
    b_key = lab.host_key_line("b").split(" ", 1)[1]
    repo.secrets["SKYPLAN_KNOWN_HOSTS"] = f"{lab.underlay['a']} {b_key}\n"
    repo.commit(
        "version: 1\nprovider:\n  name: wireguard\n  ssh:\n    config: ssh_config\nclusters:\n"
        f'  - {{name: a, endpoint: "{lab.endpoint("a")}", gateway: "{lab.url("a")}"}}\n'
    )
    with pytest.raises(AssertionError, match="(?i)host key"):
        repo.run_job("apply", ssh_from=lab.bin_dir)
    assert lab.run("a", ["test", "-e", "/etc/wireguard/wgsky0.key"], check=False).returncode != 0


