"""The SSH transport against real sshd gateways in namespaces: isolation, quoting, trust, failures."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from providers.wireguard.ssh import Connections, Gateway, GatewayTimeoutError, HostKeyError, UnreachableError

from .gateways import ALTERNATE_PORT, CONTROLLER, GatewayLab
from .netns import _namespace_pids

pytestmark = pytest.mark.e2e


def gateways(lab: GatewayLab, *names: str, timeout: float = 5.0) -> list[Gateway]:
    return [Gateway(name, config=lab.ssh_config, timeout=timeout) for name in names]


def exists_on(lab: GatewayLab, gateway: str, path: str) -> bool:
    """Looked up from outside SSH, in the gateway's own mount namespace."""
    return lab.run(gateway, ["test", "-e", path], check=False).returncode == 0


def test_each_gateway_sees_its_own_etc_wireguard(gateway_lab: GatewayLab) -> None:
    a, b = Gateway("a", config=gateway_lab.ssh_config), Gateway(gateway_lab.url("b"), config=gateway_lab.ssh_config)
    with Connections() as ssh:
        written = ssh.run(a, ["tee", "/etc/wireguard/only-on-a"], stdin=b"from a\n")
        assert written.exit_code == 0
        assert ssh.run(a, ["cat", "/etc/wireguard/only-on-a"]).stdout == b"from a\n"
        on_b = ssh.run(b, ["test", "-e", "/etc/wireguard/only-on-a"])
        assert on_b.exit_code == 1  # a remote failure is a result, not an exception
        mode = ssh.run(b, ["stat", "-c", "%a", "/etc/wireguard"]).stdout.strip()
        assert mode == b"700"
        assert ssh.run(b, ["sh", "-c", "echo $WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD"]).stdout == b"1\n"
    assert exists_on(gateway_lab, "a", "/etc/wireguard/only-on-a")
    assert not exists_on(gateway_lab, "b", "/etc/wireguard/only-on-a")
    assert not exists_on(gateway_lab, CONTROLLER, "/etc/wireguard/only-on-a")
    assert not Path("/etc/wireguard/only-on-a").exists()


def test_a_gateway_has_a_home_of_its_own(gateway_lab: GatewayLab) -> None:
    # Its login shell reads nothing of this machine's home (a ~/.bashrc that runs pyenv made
    # every session of a busy CI machine wait on pyenv's lock).
    (gateway,) = gateways(gateway_lab, "a")
    with Connections() as ssh:
        listed = ssh.run(gateway, ["sh", "-c", 'ls -A "$HOME"'])
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout == b""


def test_argv_arrives_verbatim_and_nothing_is_injected(gateway_lab: GatewayLab) -> None:
    marker = "/etc/wireguard/injected"
    hostile = [
        "a b",
        "it's",
        '"double"',
        f"; touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"&& touch {marker} #",
        f"| touch {marker}",
        "line\nbreak",
        "*",
        "$HOME",
        "-n",
        "",
        "\\",
        "é ünï",
    ]
    (gateway,) = gateways(gateway_lab, "a")
    with Connections() as ssh:
        done = ssh.run(gateway, ["python3", "-c", "import sys, json; print(json.dumps(sys.argv[1:]))", *hostile])
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == hostile
    assert not exists_on(gateway_lab, "a", marker)


def test_a_wrong_host_key_is_refused_and_nothing_runs(gateway_lab: GatewayLab) -> None:
    marker = "/etc/wireguard/ran"
    # a's address now carries b's host key: exactly what a man in the middle would present.
    lines = gateway_lab.known_hosts.read_text().splitlines()
    b_key = gateway_lab.host_key_line("b").split(" ", 1)[1]
    gateway_lab.known_hosts.write_text(
        "\n".join(f"{gateway_lab.underlay['a']} {b_key}" if line == gateway_lab.host_key_line("a") else line for line in lines) + "\n"
    )
    a, c = gateways(gateway_lab, "a", "c")
    with Connections() as ssh:
        with pytest.raises(HostKeyError) as refused:
            ssh.run(a, ["touch", marker])
        assert not isinstance(refused.value, UnreachableError)
        assert "host key" in str(refused.value) and "gateway a" in str(refused.value)
        # The same inside run_many: its own error class, next to a gateway that works.
        outcomes = ssh.run_many([a, c], lambda gw: ssh.run(gw, ["touch", marker]).exit_code, parallelism=2)
    assert isinstance(outcomes[0].error, HostKeyError)
    assert outcomes[1].ok and outcomes[1].value == 0
    assert not exists_on(gateway_lab, "a", marker)
    assert exists_on(gateway_lab, "c", marker)

    # An unknown host key (no line at all) is refused in the same way, never accepted.
    gateway_lab.known_hosts.write_text(gateway_lab.host_key_line("c") + "\n")
    with Connections() as ssh, pytest.raises(HostKeyError):
        ssh.run(gateways(gateway_lab, "b")[0], ["touch", marker])
    assert not exists_on(gateway_lab, "b", marker)
    assert gateway_lab.known_hosts.read_text() == gateway_lab.host_key_line("c") + "\n"  # nothing learnt


def test_a_stopped_sshd_fails_only_its_own_gateway(gateway_lab: GatewayLab) -> None:
    a, b, c = gateways(gateway_lab, "a", "b", "c")
    nowhere = Gateway("ssh://root@192.0.2.200", config=gateway_lab.ssh_config, timeout=1)  # no host answers
    marker = "/etc/wireguard/applied"
    with Connections() as ssh:
        assert all(o.ok for o in ssh.run_many([a, b], lambda gw: ssh.run(gw, ["true"]), parallelism=2))
        # b goes down while skyplan holds a connection to it; c was never reached before.
        gateway_lab.stop_sshd("b")
        gateway_lab.stop_sshd("c")
        deadline = time.monotonic() + 5
        while ssh.is_connected(b) and time.monotonic() < deadline:
            time.sleep(0.05)  # the shared connection notices the closed TCP connection
        started = time.monotonic()
        outcomes = ssh.run_many(
            [a, b, c, nowhere], lambda gw: ssh.run(gw, ["touch", marker], check=True).exit_code, parallelism=4
        )
        elapsed = time.monotonic() - started
    by_address = {o.gateway.address: o for o in outcomes}
    assert by_address["a"].ok and by_address["a"].value == 0
    for failed in ("b", "c", nowhere.address):
        assert isinstance(by_address[failed].error, UnreachableError), by_address[failed]
        assert by_address[failed].error.gateway == failed
    assert "no answer within" in str(by_address[nowhere.address].error) or "timed out" in str(by_address[nowhere.address].error)
    assert elapsed < 4, f"an unreachable gateway held the others up for {elapsed:.1f} s"
    assert exists_on(gateway_lab, "a", marker)
    assert not exists_on(gateway_lab, "b", marker)
    assert not exists_on(gateway_lab, "c", marker)

    # sshd back: the same gateway works again, through a new connection.
    gateway_lab.start_sshd("b")
    with Connections() as ssh:
        assert ssh.run(b, ["touch", marker]).exit_code == 0
    assert exists_on(gateway_lab, "b", marker)


def test_the_connection_is_shared_and_ends_with_close(gateway_lab: GatewayLab) -> None:
    (a,) = gateways(gateway_lab, "a")
    ssh = Connections()
    folder = ssh.control_folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    try:
        assert not ssh.is_connected(a)
        started = time.monotonic()
        ssh.run(a, ["true"])
        first = time.monotonic() - started
        assert ssh.is_connected(a)  # `ssh -O check` answers through the control socket
        logins_before = (gateway_lab.workdir / "a" / "sshd.log").read_text().count("Accepted publickey")
        started = time.monotonic()
        for _ in range(3):
            assert ssh.run(a, ["true"]).exit_code == 0
        reused = (time.monotonic() - started) / 3
        # The same host with another timeout is the same connection, not a second login.
        assert ssh.run(Gateway("a", config=gateway_lab.ssh_config, timeout=3), ["true"]).exit_code == 0
        logins_after = (gateway_lab.workdir / "a" / "sshd.log").read_text().count("Accepted publickey")
    finally:
        ssh.close()
    assert logins_before == logins_after == 1, "every command after the first must reuse the one login"
    assert reused < first, (first, reused)
    assert not folder.exists()
    # No ssh master is left in the controller's namespace: only its holder remains.
    deadline = time.monotonic() + 5
    while len(_namespace_pids(gateway_lab.namespace(CONTROLLER))) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_namespace_pids(gateway_lab.namespace(CONTROLLER))) == 1


def test_wg_genkey_under_umask_077_makes_a_0600_key_on_the_gateway(gateway_lab: GatewayLab) -> None:
    a, b = gateways(gateway_lab, "a", "b")
    key = "/etc/wireguard/wgsky0.key"
    with Connections() as ssh:
        made = ssh.run(a, ["sh", "-c", f"umask 077 && wg genkey > {key}"], check=True)
        assert made.stdout == b""  # the private key went to the file, not through skyplan
        mode = ssh.run(a, ["stat", "-c", "%a %u", key], check=True).stdout.split()
        public = ssh.run(a, ["sh", "-c", f"wg pubkey < {key}"], check=True).stdout.strip()
        assert ssh.run(b, ["test", "-e", key]).exit_code == 1
    assert mode == [b"600", b"0"]
    assert len(public) == 44
    assert exists_on(gateway_lab, "a", key)
    assert not Path(key).exists()
    private = gateway_lab.run("a", ["cat", key]).stdout.strip()
    assert private and private not in repr(made)
    assert not any(private in p.read_text(errors="replace") for p in gateway_lab.workdir.rglob("*") if p.is_file())
    assert os.environ["PATH"].startswith(str(gateway_lab.bin_dir))


def test_a_command_over_its_timeout_fails_only_its_gateway(gateway_lab: GatewayLab) -> None:
    slow = Gateway("a", config=gateway_lab.ssh_config, timeout=1)
    (quick,) = gateways(gateway_lab, "b")
    with Connections() as ssh:
        started = time.monotonic()
        outcomes = ssh.run_many([slow, quick], lambda gw: ssh.run(gw, ["sleep", "3" if gw is slow else "0"]).exit_code, 2)
        elapsed = time.monotonic() - started
        assert isinstance(outcomes[0].error, GatewayTimeoutError) and "no answer within 1 s" in str(outcomes[0].error)
        assert outcomes[1].ok and outcomes[1].value == 0
        assert elapsed < 2.5
        # The shared connection survives a timed-out command: the next one runs.
        assert ssh.run(slow, ["true"]).exit_code == 0


def test_the_users_ssh_config_decides_the_route_proxyjump_included(gateway_lab: GatewayLab) -> None:
    # A Host alias that reaches c only through b, as a bastion would be used.
    config = gateway_lab.ssh_config
    config.write_text(f"Host c-via-b\n    HostName {gateway_lab.underlay['c']}\n    User root\n    ProxyJump b\n\n" + config.read_text())
    via_b = Gateway("c-via-b", config=config)
    with Connections() as ssh:
        seen = ssh.run(via_b, ["sh", "-c", 'echo "$SSH_CONNECTION"; hostname -I'], check=True).stdout.decode().split()
    assert seen[0] == gateway_lab.underlay["b"]  # c's sshd was reached from b, the jump host
    assert gateway_lab.underlay["c"] in seen[4:]
    # The jump does not weaken trust: c's own host key is still checked at the end of it.
    gateway_lab.known_hosts.write_text(gateway_lab.host_key_line("b") + "\n")
    with Connections() as ssh, pytest.raises(HostKeyError):
        ssh.run(via_b, ["true"])


def test_port_comes_from_the_url_or_the_ssh_config(gateway_lab: GatewayLab) -> None:
    config = gateway_lab.ssh_config
    config.write_text(f"Host a-alt\n    HostName {gateway_lab.underlay['a']}\n    User root\n    Port {ALTERNATE_PORT}\n\n" + config.read_text())
    by_alias = Gateway("a-alt", config=config)
    by_url = Gateway(f"{gateway_lab.url('b')}:{ALTERNATE_PORT}", config=config)
    # Lines for [host]:port too, as ssh-keyscan -p would write them.
    with gateway_lab.known_hosts.open("a") as known:
        known.write(gateway_lab.host_key_line("a", ALTERNATE_PORT) + "\n" + gateway_lab.host_key_line("b", ALTERNATE_PORT) + "\n")
    with Connections() as ssh:
        for gateway, name in ((by_alias, "a"), (by_url, "b")):
            server = ssh.run(gateway, ["sh", "-c", 'echo "$SSH_CONNECTION"'], check=True).stdout.decode().split()
            assert server[2:] == [gateway_lab.underlay[name], str(ALTERNATE_PORT)]


def test_a_killed_master_is_replaced_and_commands_still_run(gateway_lab: GatewayLab) -> None:
    (a,) = gateways(gateway_lab, "a")
    log = gateway_lab.workdir / "a" / "sshd.log"
    with Connections() as ssh:
        assert ssh.run(a, ["true"]).exit_code == 0
        master = [pid for pid in _namespace_pids(gateway_lab.namespace(CONTROLLER)) if _comm(pid) == "ssh"]
        assert len(master) == 1
        os.kill(master[0], signal.SIGKILL)  # its control socket stays behind
        # The dead master is noticed before the command (its socket no longer answers): the
        # command opens the new shared connection itself, and its output is only its own.
        done = ssh.run(a, ["sh", "-c", "echo out; echo err >&2"])
        assert (done.exit_code, done.stdout, done.stderr) == (0, b"out\n", b"err\n")
        assert ssh.run(a, ["true"]).exit_code == 0
        assert ssh.is_connected(a)  # a new master, which later commands share again
        logins = log.read_text().count("Accepted publickey")
        assert ssh.run(a, ["true"]).exit_code == 0
        assert log.read_text().count("Accepted publickey") == logins == 2


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_masters_are_asked_and_ended_over_their_sockets_and_a_forgotten_close_still_ends_them(gateway_lab: GatewayLab, tmp_path: Path, monkeypatch) -> None:
    a, b = gateways(gateway_lab, "a", "b")
    # Every ssh process is logged: checking and ending masters must need none.
    log = tmp_path / "ssh.log"
    wrapper = tmp_path / "bin" / "ssh"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$1 $2 $3" >> {log}\nexec {gateway_lab.bin_dir / "ssh"} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    ssh = Connections()
    folder = ssh.control_folder
    assert ssh.run_many([a, b], lambda gw: ssh.run(gw, ["true"]).exit_code, parallelism=2)[0].value == 0
    assert len(log.read_text().splitlines()) == 2  # one process per gateway: login, master and command
    assert ssh.is_connected(a) and ssh.is_connected(b)
    masters = [pid for pid in _namespace_pids(gateway_lab.namespace(CONTROLLER)) if _comm(pid) == "ssh"]
    assert len(masters) == 2
    # Never closed: collecting the object ends its masters and removes the folder all the same.
    del ssh
    import gc

    gc.collect()
    assert not folder.exists()
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() and _comm(pid) == "ssh" for pid in masters) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() and _comm(pid) == "ssh" for pid in masters), "a master outlived its Connections"
    assert len(log.read_text().splitlines()) == 2, "a master was checked or ended through an ssh process"
