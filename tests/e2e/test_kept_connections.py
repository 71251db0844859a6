"""Shared SSH connections kept across runs (provider.ssh.keep_connections), against real sshd
gateways in namespaces: reuse, what must never ride on an old master, planted sockets, and the
two ways a master used to be left behind (a slow one taken for dead, Ctrl-C during a login)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

import pytest

from providers.wireguard import kept, ssh
from providers.wireguard.ssh import Connections, Gateway, HostKeyError

from .gateways import CONTROLLER, GatewayLab
from .netns import _namespace_pids

pytestmark = pytest.mark.e2e


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch, gateway_lab: GatewayLab):
    """A private XDG_RUNTIME_DIR of the test's (short: socket paths); every kept master is ended
    after the test, and none is left in the controller's namespace."""
    base = Path(tempfile.mkdtemp(prefix="sp-rt-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    yield base
    ssh.end_kept()
    shutil.rmtree(base, ignore_errors=True)
    assert wait_for_no_ssh(gateway_lab), "an ssh master outlived the test"


def kept_gateway(lab: GatewayLab, name: str, config: Path | None = None, keep: float = 60) -> Gateway:
    return Gateway(name, config=config or lab.ssh_config, timeout=10, keep=keep)


def logins(lab: GatewayLab, gateway: str) -> int:
    return (lab.workdir / gateway / "sshd.log").read_text().count("Accepted publickey")


def server_address(conns: Connections, gateway: Gateway) -> str:
    """The address the command's sshd was reached at: which host really ran it."""
    return conns.run(gateway, ["sh", "-c", 'echo "$SSH_CONNECTION"'], check=True).stdout.decode().split()[2]


def ssh_processes(lab: GatewayLab) -> list[int]:
    found = []
    for pid in _namespace_pids(lab.namespace(CONTROLLER)):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "ssh":
                found.append(pid)
        except OSError:
            pass
    return found


def wait_for_no_ssh(lab: GatewayLab, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while ssh_processes(lab) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not ssh_processes(lab)


# -- reuse -----------------------------------------------------------------------------------------------


def test_a_kept_connection_outlives_its_run_and_the_next_run_logs_in_no_more(gateway_lab: GatewayLab, runtime: Path) -> None:
    a = kept_gateway(gateway_lab, "a")
    with Connections() as first:
        assert server_address(first, a) == gateway_lab.underlay["a"]
        control = first._control_path(a)
    assert control.parent == runtime / "skyplan" / "ssh" and control.is_socket()
    assert ssh_processes(gateway_lab), "the kept master ended with its run"
    assert logins(gateway_lab, "a") == 1
    with Connections() as second:
        assert second._control_path(a) == control
        assert second.is_connected(a)
        for _ in range(3):
            assert second.run(a, ["true"]).exit_code == 0
    assert logins(gateway_lab, "a") == 1, "the second run logged in instead of reusing the kept connection"
    # On demand: every kept master ends, over its socket, and nothing is left.
    assert ssh.end_kept() == 1
    assert wait_for_no_ssh(gateway_lab)
    assert not control.exists()
    # Ended, it is simply made again by the next run.
    with Connections() as third:
        assert third.run(a, ["true"]).exit_code == 0
    assert logins(gateway_lab, "a") == 2


def test_off_by_default_nothing_is_kept_and_the_folder_is_not_even_made(gateway_lab: GatewayLab, runtime: Path) -> None:
    with Connections() as conns:
        assert conns.run(kept_gateway(gateway_lab, "a", keep=0), ["true"]).exit_code == 0
    assert wait_for_no_ssh(gateway_lab)
    assert list(runtime.iterdir()) == []


# -- what must never ride on an old master ----------------------------------------------------------------


def test_a_changed_ssh_config_never_rides_on_the_old_master(gateway_lab: GatewayLab, runtime: Path) -> None:
    config = gateway_lab.ssh_config
    a = kept_gateway(gateway_lab, "a")
    with Connections() as conns:
        assert server_address(conns, a) == gateway_lab.underlay["a"]
    # The alias `a` now names b's address: the same text in links.yaml, another host.
    config.write_text(config.read_text().replace(f"HostName {gateway_lab.underlay['a']}\n", f"HostName {gateway_lab.underlay['b']}\n", 1))
    with Connections() as conns:
        assert server_address(conns, a) == gateway_lab.underlay["b"]
    assert (logins(gateway_lab, "a"), logins(gateway_lab, "b")) == (1, 1)
    # Even an edit that changes nothing ssh does (a comment) is a new login: the file is not the one the master was made with.
    config.write_text(config.read_text() + "# edited\n")
    with Connections() as conns:
        assert server_address(conns, a) == gateway_lab.underlay["b"]
    assert logins(gateway_lab, "b") == 2


def test_the_same_alias_in_another_ssh_config_is_another_host(gateway_lab: GatewayLab, runtime: Path, tmp_path: Path) -> None:
    other = tmp_path / "other_ssh_config"
    other.write_text(gateway_lab.ssh_config.read_text().replace(f"HostName {gateway_lab.underlay['a']}\n", f"HostName {gateway_lab.underlay['c']}\n", 1))
    with Connections() as conns:
        assert server_address(conns, kept_gateway(gateway_lab, "a")) == gateway_lab.underlay["a"]
    with Connections() as conns:  # another workspace, whose ssh config says `a` is c
        assert server_address(conns, kept_gateway(gateway_lab, "a", config=other)) == gateway_lab.underlay["c"]
        assert server_address(conns, kept_gateway(gateway_lab, "b")) == gateway_lab.underlay["b"]
        # The same host by URL and user is its own connection too: another destination, another name.
        assert server_address(conns, kept_gateway(gateway_lab, gateway_lab.url("a"))) == gateway_lab.underlay["a"]
    assert [logins(gateway_lab, g) for g in ("a", "b", "c")] == [2, 1, 1]
    assert len(kept.sockets(runtime / "skyplan" / "ssh")) == 4


def test_a_changed_known_hosts_is_a_new_login_and_its_host_key_is_verified(gateway_lab: GatewayLab, runtime: Path) -> None:
    marker = "/etc/wireguard/ran"
    a = kept_gateway(gateway_lab, "a")
    with Connections() as conns:
        assert conns.run(a, ["true"]).exit_code == 0
    # a's address now carries b's host key, as a man in the middle would present it.
    b_key = gateway_lab.host_key_line("b").split(" ", 1)[1]
    gateway_lab.known_hosts.write_text(
        gateway_lab.known_hosts.read_text().replace(gateway_lab.host_key_line("a"), f"{gateway_lab.underlay['a']} {b_key}")
    )
    with Connections() as conns, pytest.raises(HostKeyError):
        conns.run(a, ["touch", marker])
    assert gateway_lab.run("a", ["test", "-e", marker], check=False).returncode != 0
    assert logins(gateway_lab, "a") == 1


# -- planted sockets ---------------------------------------------------------------------------------------


class FakeMaster:
    """A unix socket that answers like an ssh master and counts who connects."""

    def __init__(self, path: Path):
        self.path, self.connections = path, 0
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                try:
                    conn.sendall(struct.pack(">III", 8, 1, 4))
                    conn.recv(100)
                    conn.sendall(struct.pack(">IIII", 12, 0x80000005, 1, 1))
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.mark.parametrize("planted", ["symlink to a listening socket", "regular file", "socket of another user"])
def test_a_planted_socket_is_never_used_and_a_real_login_replaces_it(gateway_lab: GatewayLab, runtime: Path, planted: str) -> None:
    a = kept_gateway(gateway_lab, "a")
    with Connections() as probe:
        control = probe._control_path(a)  # the name the next run looks for
    elsewhere = Path(tempfile.mkdtemp(prefix="sp-fake-"))
    fake = None
    try:
        if planted == "symlink to a listening socket":
            fake = FakeMaster(elsewhere / "master")
            control.symlink_to(elsewhere / "master")
        elif planted == "regular file":
            control.write_text("not a socket")
        else:
            fake = FakeMaster(control)
            os.chown(control, 65534, 65534)
        with Connections() as conns:
            assert server_address(conns, a) == gateway_lab.underlay["a"]
        assert logins(gateway_lab, "a") == 1
        assert control.is_socket() and not control.is_symlink() and os.lstat(control).st_uid == os.geteuid()
        if fake is not None:
            assert fake.connections == 0, "skyplan talked to a planted socket"
            assert planted != "symlink to a listening socket" or (elsewhere / "master").is_socket()  # the link was removed, not followed
    finally:
        if fake is not None:
            fake.close()
        shutil.rmtree(elsewhere)


# -- masters that used to be left behind --------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 60])
def test_a_master_slow_to_answer_is_waited_for_not_replaced(gateway_lab: GatewayLab, runtime: Path, monkeypatch, keep: float) -> None:
    monkeypatch.setattr(ssh, "MUX_WAIT", 0.3)
    a = kept_gateway(gateway_lab, "a", keep=keep)
    conns = Connections()
    try:
        assert conns.run(a, ["true"]).exit_code == 0
        (master,) = ssh_processes(gateway_lab)
        # The master stops answering for longer than a probe waits (a busy machine, or much to carry).
        os.kill(master, signal.SIGSTOP)
        threading.Timer(1.0, os.kill, (master, signal.SIGCONT)).start()
        started = time.monotonic()
        done = conns.run(a, ["sh", "-c", "echo through"])
        assert (done.exit_code, done.stdout) == (0, b"through\n")
        assert time.monotonic() - started >= 0.9  # it waited for the master, it did not go round it
        assert ssh_processes(gateway_lab) == [master], "a second master was started next to the slow one"
        assert logins(gateway_lab, "a") == 1
    finally:
        conns.close()
    if not keep:
        assert wait_for_no_ssh(gateway_lab), "the slow master outlived close()"


def test_closing_during_the_first_command_leaves_no_master(gateway_lab: GatewayLab, runtime: Path, tmp_path: Path) -> None:
    a, b = kept_gateway(gateway_lab, "a", keep=0), kept_gateway(gateway_lab, "b", keep=0)
    conns = Connections()
    outcomes = []
    # One worker: a logs in and runs a slow first command; b waits its turn behind it, as
    # run_many's queue does when Ctrl-C arrives.
    worker = threading.Thread(
        target=lambda: outcomes.extend(conns.run_many([a, b], lambda gw: conns.run(gw, ["sleep", "5"]).exit_code, parallelism=1))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not kept.sockets(conns.control_folder) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kept.sockets(conns.control_folder), "the first command's master never came up"
    time.sleep(0.2)  # the command runs
    started = time.monotonic()
    conns.close()  # what Workspace.close does on Ctrl-C
    assert time.monotonic() - started < 3
    worker.join(10)
    assert not worker.is_alive()
    assert wait_for_no_ssh(gateway_lab, 3), "a master made by the interrupted command outlived close()"
    assert [o.ok for o in outcomes] == [False, False]
    assert "closed" in str(outcomes[1].error) and logins(gateway_lab, "b") == 0  # nothing queued logged in
    assert not conns.control_folder.exists()


# -- through the CLI ------------------------------------------------------------------------------------------


def workspace_with_keep(lab: GatewayLab, folder: Path, keep: str | None) -> Path:
    folder.mkdir()
    shutil.copy(lab.ssh_config, folder / "ssh_config")
    clusters = "".join(
        f"  - name: {g}\n    endpoint: {lab.endpoint(g)}\n    subnets: [10.{n}.0.0/16]\n    gateway: {g}\n" for n, g in enumerate(("a", "b"), start=1)
    )
    (folder / "links.yaml").write_text(
        "version: 1\nprovider:\n  name: wireguard\n  address_pool: 100.96.0.0/24\n  ssh:\n    config: ssh_config\n    timeout: 20s\n"
        + (f"    keep_connections: {keep}\n" if keep else "")
        + f"clusters:\n{clusters}links:\n  - name: a-b\n    source: a\n    target: b\n"
    )
    return folder


def test_with_keep_connections_the_run_after_the_first_logs_in_nowhere(gateway_lab: GatewayLab, runtime: Path, tmp_path: Path, skyplan, monkeypatch) -> None:
    monkeypatch.chdir(workspace_with_keep(gateway_lab, tmp_path / "ws", "60s"))
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    monkeypatch.delenv("SKYPLAN_CONFIG", raising=False)
    first = skyplan("apply", "--auto-approve")
    assert first.exit_code == 0, first.output
    assert [logins(gateway_lab, g) for g in ("a", "b")] == [1, 1]  # the first run still logs in
    assert len(ssh_processes(gateway_lab)) == 2  # and leaves its two masters running
    planned = skyplan("plan")
    assert planned.exit_code == 0 and "No changes." in planned.output, planned.output
    assert [logins(gateway_lab, g) for g in ("a", "b")] == [1, 1]
    assert ssh.end_kept() == 2


def test_a_refused_folder_stops_gateway_work_with_a_located_message_and_no_login(gateway_lab: GatewayLab, runtime: Path, tmp_path: Path, skyplan, monkeypatch) -> None:
    (runtime / "skyplan").mkdir(mode=0o700)
    (runtime / "skyplan" / "ssh").mkdir(mode=0o755)
    (runtime / "skyplan" / "ssh").chmod(0o755)
    monkeypatch.chdir(workspace_with_keep(gateway_lab, tmp_path / "ws", "60"))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert f"provider.ssh.keep_connections: {runtime}/skyplan/ssh has mode 0755" in result.output
    assert "Traceback" not in result.output
    assert [logins(gateway_lab, g) for g in ("a", "b")] == [0, 0]
    assert stat_mode(runtime / "skyplan" / "ssh") == 0o755  # refused, not changed


def stat_mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o7777


def test_ctrl_c_during_the_first_commands_of_a_plan_leaves_no_master(gateway_lab: GatewayLab, runtime: Path, tmp_path: Path, skyplan, monkeypatch) -> None:
    import subprocess
    import sys

    ws = workspace_with_keep(gateway_lab, tmp_path / "ws", None)  # the default: nothing is kept
    monkeypatch.chdir(ws)
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    monkeypatch.delenv("SKYPLAN_CONFIG", raising=False)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert wait_for_no_ssh(gateway_lab)
    # From now on `wg` takes 5 s on both gateways, inside their own mount namespaces only: the
    # refresh's first command to each (which logs in and becomes the master) is under way for a while.
    real_wg = gateway_lab.workdir / "wg.real"
    shutil.copy("/usr/bin/wg", real_wg)
    slow = gateway_lab.workdir / "slow-wg"
    slow.write_text(f"#!/bin/sh\nsleep 5\nexec {real_wg} \"$@\"\n")
    slow.chmod(0o755)
    for g in ("a", "b"):
        gateway_lab.run(g, ["mount", "--bind", str(slow), "/usr/bin/wg"])
    before = [logins(gateway_lab, g) for g in ("a", "b")]
    plan = subprocess.Popen(
        [str(Path(sys.executable).parent / "skyplan"), "plan"],
        cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while [logins(gateway_lab, g) for g in ("a", "b")] != [n + 1 for n in before] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [logins(gateway_lab, g) for g in ("a", "b")] == [n + 1 for n in before], "the plan never logged in"
        time.sleep(0.5)  # both masters up, both first commands still running
        assert len(ssh_processes(gateway_lab)) >= 2
        os.killpg(plan.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the whole group
        output, _ = plan.communicate(timeout=10)
    finally:
        if plan.poll() is None:
            plan.kill()
            plan.wait()
    assert plan.returncode == 130, output
    assert b"interrupted" in output and b"Traceback" not in output
    assert wait_for_no_ssh(gateway_lab, 2), "a master outlived the interrupted plan"
