"""What hooks are given and what of their output is quoted: no database credentials, no key part.

on_change and status_command are programs a pull request can name. They must not receive the
database password skyplan was given, and what skyplan quotes of their stderr (into the apply
output and the state) must not carry a private key, whole or in part.
"""

from __future__ import annotations

import pytest

from skyplan_wireguard import hooks, keys
from tests.workspaces import links_yaml

TWO = [("a", "192.0.2.1:51820", ["10.1.0.0/16"]), ("b", "192.0.2.2:51820", ["10.2.0.0/16"])]
LINK = [("a-b", "a", "b")]


def fragments(secret: str, size: int = 10) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def leaked(secret: str, text: str) -> list[str]:
    return [part for part in fragments(secret) if part in text]


@pytest.mark.postgres
def test_a_hook_that_prints_its_environment_sees_no_database_credentials(workspace, skyplan, skyctl, postgres_server):
    # The suite's server trusts this role, so a password in the URL is accepted and ignored:
    # the URL is as a CI job would hold it, password and all.
    database = postgres_server.create_database()
    url = database.replace("postgresql://postgres@", "postgresql://postgres:url-pass-6b1f@")
    secrets = {
        "SKYPLAN_BACKEND": url,
        "PGPASSWORD": "pg-pass-29ad",
        "PGPASSFILE": "/run/secrets/pgpass-77c3",
        "PGSERVICEFILE": "/run/secrets/pgservice-0e5a",
        "DATABASE_URL": "postgresql://app:db-url-pass-a410@db/app",
        "SKYPLAN_VAR_token": "var-token-5d2e",
    }
    provider = (
        "on_change: [sh, -c, 'env > \"$0.env\"', '{{ cluster }}']\n"
        "status_command: [sh, -c, 'env > \"$0.status-env\"; exit 1', '{{ cluster }}']"
    )
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK, provider=provider))
    environment = {**secrets, "KEPT_FOR_HOOKS": "yes"}
    result = skyplan("apply", "--auto-approve", env=environment)
    assert result.exit_code == 0, result.output
    status = skyctl("get", "link", "a-b", env=environment)  # runs status_command for a and b
    assert status.exit_code == 0, status.output

    seen = {path.name: path.read_text() for path in sorted(workspace.glob("*.env")) + sorted(workspace.glob("*.status-env"))}
    assert sorted(seen) == ["a.env", "a.status-env", "b.env", "b.status-env"]
    for name, text in seen.items():
        names = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line}
        assert "KEPT_FOR_HOOKS" in names and "PATH" in names, f"{name}: the rest of the environment is the hook's"
        assert not {n for n in names if n.startswith(("SKYPLAN_", "PG")) or n == "DATABASE_URL"}, f"{name}: {sorted(names)}"
        for value in ("url-pass-6b1f", "pg-pass-29ad", "pgpass-77c3", "pgservice-0e5a", "db-url-pass-a410", "var-token-5d2e"):
            assert value not in text, f"{name} holds {value}"


def test_the_withheld_variables_follow_one_rule():
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "SKYPLAN_BACKEND": "postgresql://u:p@h/d",
        "SKYPLAN_CONFIG": "links.yaml",
        "PGPASSWORD": "p",
        "PGHOST": "h",
        "PGSSLKEY": "/k",
        "DATABASE_URL": "postgresql://u:p@h/d",
        "MY_PGPASSWORD": "kept: not a libpq variable",
        "database_url": "kept: names are case-sensitive",
    }
    assert hooks.hook_environment(environ) == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "MY_PGPASSWORD": "kept: not a libpq variable",
        "database_url": "kept: names are case-sensitive",
    }


def test_a_key_on_stderr_is_masked_whole_wherever_the_quote_cuts_it():
    key = keys.generate()
    for kept in range(len(key) + 1):
        # The quote keeps the last STDERR_QUOTED characters: `kept` of the key's fall inside it.
        stderr = "error: " + "x" * 300 + key + "y" * (hooks.STDERR_QUOTED - kept) + "\n"
        quoted = hooks.quoted_stderr(stderr)
        assert len(quoted) <= hooks.STDERR_QUOTED
        assert leaked(key, quoted) == [], f"{kept} characters of the key inside the quote"


def test_a_failing_hook_that_prints_a_key_across_the_quoting_boundary_leaks_no_part_of_it(workspace, skyplan):
    # A hook (buggy or hostile) prints the cluster's private key to stderr, placed so that the
    # 2,000-character quote starts 20 characters into it, and fails.
    pad = "y" * (hooks.STDERR_QUOTED - 24)
    (workspace / "hook.sh").write_text(
        f"head -c 300 /dev/zero | tr '\\0' x >&2\ntr -d '\\n' < .skyplan/keys/$1.key >&2\nprintf %s {pad} >&2\nexit 1\n"
    )
    provider = "on_change: [sh, hook.sh, '{{ cluster }}']"
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK, provider=provider))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "on_change for cluster 'a' failed" in result.output and "exited with 1: " in result.output, result.output
    shown = skyplan("show").output + skyplan("state", "show", "cluster.a").output
    state_text = (workspace / ".skyplan/state.json").read_text()
    assert pad[:100] in state_text, "the quote of stderr is not where this test looks"
    for name in ("a", "b"):
        key = (workspace / f".skyplan/keys/{name}.key").read_text().strip()
        for where, text in (("apply output", result.output), ("show", shown), ("state", state_text)):
            assert leaked(key, text) == [], f"part of {name}'s key in the {where}"


THREE = [*TWO, ("c", "192.0.2.3:51820", ["10.3.0.0/16"])]
MESH = [("a-b", "a", "b"), ("a-c", "a", "c")]


def test_a_hook_that_hangs_is_killed_with_what_it_started_and_fails_its_cluster(workspace, skyplan):
    # `sh -c '… &'`: the sleep that outlives the shell holds the pipes; killing the shell alone
    # would leave apply (and the state lock) waiting for it.
    hook = "sleep 600 & echo $! > \"$0.pid\"; wait"
    provider = f"hook_timeout: 1s\non_change: [sh, -c, '{hook}', '{{{{ cluster }}}}']"
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK, provider=provider))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    for name in ("a", "b"):
        assert f"on_change for cluster '{name}' failed: command timed out after 1s and was killed" in result.output
        pid = int((workspace / f"{name}.pid").read_text())
        assert not _alive(pid), f"the sleep that {name}'s hook started is still running"
    # Its resources failed like those of a hook that exits non-zero: the next apply runs it again.
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK, provider="on_change: ['true']"))
    again = skyplan("apply", "--auto-approve")
    assert again.exit_code == 0 and "Apply complete!" in again.output, again.output


def test_hooks_run_at_the_same_time(workspace, skyplan):
    # Each hook waits until all three have started: one after another, the first would wait out
    # its own deadline and fail.
    hook = (
        "touch \"$0.started\"; i=0; while [ \"$(ls *.started | wc -l)\" -lt 3 ]; do "
        "i=$((i+1)); [ $i -gt 400 ] && exit 3; sleep 0.05; done"
    )
    provider = f"hook_timeout: 60s\non_change: [sh, -c, '{hook}', '{{{{ cluster }}}}']"
    (workspace / "links.yaml").write_text(links_yaml(THREE, MESH, provider=provider))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete! Resources: 5 added" in result.output
    assert sorted(p.name for p in workspace.glob("*.started")) == ["a.started", "b.started", "c.started"]


def test_a_status_command_that_hangs_is_killed_after_hook_timeout(workspace, skyplan, skyctl):
    provider = "hook_timeout: 1\nstatus_command: [sleep, '600']"
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK, provider=provider))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    result = skyctl("get", "link", "a-b", "-o", "json")
    assert result.exit_code == 0, result.output
    assert "command timed out after 1s and was killed: sleep 600" in result.output


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child that nobody reaped yet is a zombie: gone in every way that matters here.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_ctrl_c_during_hooks_ends_them_and_apply_stops(workspace):
    import signal
    import subprocess
    import sys
    import time

    # Hooks run in sessions of their own, which a Ctrl-C at the terminal does not reach: the
    # apply that gets it must end them itself rather than wait out hook_timeout.
    hook = "sleep 600 & echo $! > \"$0.pid\"; wait"
    provider = f"hook_timeout: 10m\non_change: [sh, -c, '{hook}', '{{{{ cluster }}}}']"
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK, provider=provider))
    import os

    apply = subprocess.Popen(
        [sys.executable, "-m", "skyplan", "apply", "--auto-approve"],
        cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT below prints every thread's stack
        # As at a terminal: a suite started in the background (`pytest &`) ignores SIGINT, and
        # its children would inherit that and never see the Ctrl-C this test sends.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pids = [workspace / "a.pid", workspace / "b.pid"]
    for _ in range(600):
        if all(p.exists() and p.read_text().strip() for p in pids):
            break
        time.sleep(0.05)
    else:
        apply.kill()
        raise AssertionError(f"the hooks never started: {apply.communicate()[0]}")
    apply.send_signal(signal.SIGINT)
    try:
        output, _ = apply.communicate(timeout=60)  # far less than the hooks' 10 minutes
    except subprocess.TimeoutExpired:
        apply.send_signal(signal.SIGABRT)  # where each of its threads is waiting, for the report
        try:
            output, _ = apply.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            apply.kill()
            output, _ = apply.communicate()
        raise AssertionError(f"apply waited for its hooks after Ctrl-C:\n{output[-6000:]}") from None
    assert apply.returncode != 0 and "Traceback" not in output, output
    for p in pids:
        assert not _alive(int(p.read_text())), f"{p.name}: the hook's sleep outlived the apply"


def test_ctrl_c_ends_a_hook_whose_thread_had_not_registered_it_yet(monkeypatch, tmp_path):
    import subprocess
    import time
    from types import SimpleNamespace

    from skyplan.sdk import ResourceView
    from skyplan_wireguard import hooks
    from skyplan_wireguard.provider import _HookRuns

    started = []

    class SlowToRegister(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)
            time.sleep(1.0)  # the thread is held up between starting the hook and registering it

    monkeypatch.setattr(hooks.subprocess, "Popen", SlowToRegister)
    provider = SimpleNamespace(_run_hook=lambda view: hooks.run(["sleep", "600"])[2])
    runs = _HookRuns(provider, [ResourceView("cluster", "a", {}, {})])
    while not started:
        time.sleep(0.01)
    import threading

    # Ctrl-C, before the hook is registered: ending the runs must end the hook, not wait for it.
    ending = threading.Thread(target=runs.__exit__, args=(KeyboardInterrupt, KeyboardInterrupt(), None), daemon=True)
    ending.start()
    ending.join(timeout=10)
    try:
        assert not ending.is_alive(), "waited for the hook instead of ending it"
        assert started[0].poll() is not None
    finally:
        started[0].kill()
