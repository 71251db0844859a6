"""Gateway addresses as data, hostile ones included, and the ssh command line built from them."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from providers.wireguard import ssh as transport
from providers.wireguard.ssh import (
    AuthenticationError,
    Connections,
    Destination,
    Gateway,
    GatewayAddressError,
    HostKeyError,
    RemoteCommandError,
    UnreachableError,
    parse_destination,
)
from skyplan.errors import SkyplanError

ACCEPTED = {
    "ssh://root@203.0.113.10": Destination("203.0.113.10", "root", None),
    "ssh://root@203.0.113.10:22": Destination("203.0.113.10", "root", 22),
    "ssh://gw1.example.com:2222": Destination("gw1.example.com", None, 2222),
    "ssh://deploy_user@gw-1.example.com.": Destination("gw-1.example.com.", "deploy_user", None),
    "ssh://[2001:db8::1]:22": Destination("2001:db8::1", None, 22),
    "ssh://admin@[2001:DB8::A]": Destination("2001:db8::a", "admin", None),
    "gw-eu-1": Destination("gw-eu-1", alias=True),
    "bastion.internal": Destination("bastion.internal", alias=True),
    "_gw": Destination("_gw", alias=True),
}

REFUSED = {
    "": "empty",
    "-oProxyCommand=touch /tmp/pwned": "whitespace",
    "-oProxyCommand=id": "starts with '-'",
    "ssh://-oProxyCommand=id": "invalid host",
    "ssh://-oProxyCommand=id@host": "invalid user",
    "ssh://root@-oProxyCommand=id": "invalid host",
    "ssh://root@host:-1": "invalid port",
    "ssh://root@host:0": "invalid port",
    "ssh://root@host:65536": "invalid port",
    "ssh://root@host:022": "invalid port",
    "ssh://root@host:２２": "invalid port",
    "ssh://root@host:": "invalid port",
    "ssh://root@host/etc": "no path",
    "ssh://root@host?x=1": "invalid host",
    "ssh://root@host#frag": "invalid host",
    "ssh://root@host\n-oProxyCommand=id": "control character",
    "gw\r\nHost *": "control character",
    "gw\tx": "whitespace",
    "gw\x00": "control character",
    "ssh://root@%h": "'%'",
    "%C": "'%'",
    "ssh://a@b@host": "is not ssh://",
    "ssh://root@[::1": "is not ssh://",
    "ssh://root@[not-ipv6]": "IPv6",
    "ssh://root@[1.2.3.4]": "IPv6",
    "ssh://root@[fe80::1%eth0]": "'%'",
    "ssh://root@": "invalid host",
    "ssh://:22": "invalid host",
    "ssh://ro ot@host": "whitespace",
    "ssh://root;id@host": "invalid user",
    "ssh://$(id)@host": "invalid user",
    "ssh://host..example": "invalid host",
    "ssh://" + "a" * 64 + ".example": "invalid host",
    "telnet://host": "only ssh://",
    "SSH://host": "only ssh://",
    "root@host": "Host alias",
    "host:22": "Host alias",
    "gw.": "Host alias",
    "*": "Host alias",
    "gw!": "Host alias",
    "gw/../x": "Host alias",
    "[::1]": "Host alias",
    "gw\u00e9": "Host alias",
}


@pytest.mark.parametrize("text", list(ACCEPTED))
def test_accepted_addresses(text: str) -> None:
    assert parse_destination(text) == ACCEPTED[text]


@pytest.mark.parametrize("text", list(REFUSED))
def test_refused_addresses_say_why(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_destination(text)
    assert REFUSED[text].lower() in str(refused.value).lower()


def test_a_refused_gateway_is_a_one_line_skyplan_error() -> None:
    with pytest.raises(GatewayAddressError) as refused:
        Gateway("ssh://root@host\n-oProxyCommand=id")
    assert isinstance(refused.value, SkyplanError)
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("gateway 'ssh://root@host\\n-oProxyCommand=id': ")


@pytest.mark.parametrize("timeout", [0, -1, 1e9, float("nan"), "5"])
def test_a_timeout_must_be_sane(timeout) -> None:
    with pytest.raises(GatewayAddressError):
        Gateway("gw", timeout=timeout)


class FakeSsh:
    """Stands in for ssh.py's _run_bounded (subprocess.run with output limits): records each ssh argv, answers like ssh would."""

    def __init__(self, connect_stderr: bytes = b"", connect_code: int = 0, command_code: int = 0):
        self.calls: list[list[str]] = []
        self.connect = (connect_code, connect_stderr)
        self.command_code = command_code

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        if "ControlMaster=yes" in argv:  # a connection being opened: alone (-N) or with a first command
            code, err = self.connect
            if code != 0 or "-N" in argv:
                return subprocess.CompletedProcess(argv, code, b"", err)
        if "-O" in argv:
            return subprocess.CompletedProcess(argv, 0, b"", b"Master running\n")
        return subprocess.CompletedProcess(argv, self.command_code, b"out", b"boom\n")


def test_the_command_line_forces_trust_and_quotes_every_word(monkeypatch, tmp_path: Path) -> None:
    fake = FakeSsh()
    monkeypatch.setattr(transport, "_run_bounded", fake)
    # A master comes up with the first command; this one never takes the exit request over its
    # socket, so close() falls back on `ssh -O exit`.
    monkeypatch.setattr(transport._Mux, "probe", classmethod(lambda cls, control, timeout: transport.ALIVE if fake.calls else transport.GONE))
    monkeypatch.setattr(transport._Mux, "terminate", classmethod(lambda cls, controls, timeout: [False] * len(controls)))
    gateway = Gateway("ssh://root@[2001:db8::1]:2222", config=tmp_path / "ssh_config", timeout=7.5)
    argv = ["wg", "set", "wgsky0", "peer", "$(reboot)", "allowed-ips", "10.0.0.0/24; rm -rf /"]
    with Connections() as ssh:
        result = ssh.run(gateway, argv)
        again = ssh.run(gateway, ["true"])
        folder = ssh.control_folder
    assert result.exit_code == 0 and "out" not in repr(result) and again.exit_code == 0
    opening, command, exit_ = fake.calls
    for call in (opening, command, exit_):
        assert call[:3] == ["ssh", "-F", str(tmp_path / "ssh_config")]
        options = " ".join(call)
        for forced in ("BatchMode=yes", "StrictHostKeyChecking=yes", "ConnectTimeout=8", f"ControlPath={folder}/"):
            assert forced in options
        assert call[call.index("-l") + 1] == "root" and call[call.index("-p") + 1] == "2222"
    # The first command logs in, becomes the shared connection and runs, in one process.
    assert opening[-3:-1] == ["--", "2001:db8::1"] and "ControlMaster=yes" in opening and "-N" not in opening
    assert "ControlPersist=60" in opening
    assert shlex.split(opening[-1]) == argv  # the remote shell sees exactly these words
    assert command[-3:-1] == ["--", "2001:db8::1"] and "ControlMaster=no" in command
    assert exit_[-4:] == ["-O", "exit", "--", "2001:db8::1"]  # close() ended the master


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        (b"No ED25519 host key is known for 192.0.2.12 and you have requested strict checking.\r\nHost key verification failed.\r\n", HostKeyError),
        (b"@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\nHost key verification failed.\r\n", HostKeyError),
        (b"root@192.0.2.12: Permission denied (publickey).\r\n", AuthenticationError),
        (b"ssh: connect to host 192.0.2.12 port 22: Connection refused\r\n", UnreachableError),
        (b"ssh: connect to host 192.0.2.200 port 22: Connection timed out\r\n", UnreachableError),
        (b"ssh: Could not resolve hostname gw: Name or service not known\r\n", UnreachableError),
    ],
)
def test_connection_failures_are_told_apart(monkeypatch, stderr: bytes, error: type) -> None:
    monkeypatch.setattr(transport, "_run_bounded", FakeSsh(connect_stderr=stderr, connect_code=255))
    with Connections() as ssh, pytest.raises(error) as failed:
        ssh.run(Gateway("gw"), ["true"])
    assert type(failed.value) is error
    assert "\n" not in str(failed.value) and "@@@" not in str(failed.value)


def test_check_turns_a_failed_command_into_a_remote_command_error(monkeypatch) -> None:
    monkeypatch.setattr(transport, "_run_bounded", FakeSsh(command_code=3))
    with Connections() as ssh:
        assert ssh.run(Gateway("gw"), ["false"]).exit_code == 3
        with pytest.raises(RemoteCommandError) as failed:
            ssh.run(Gateway("gw"), ["false"], check=True)
    assert failed.value.result.exit_code == 3
    assert str(failed.value) == "gateway gw: `false` exited with 3: boom"


@pytest.mark.parametrize("argv", [[], ["echo", "a\0b"], "echo hi", [b"echo"]])
def test_argv_must_be_words(argv) -> None:
    with Connections() as ssh, pytest.raises(ValueError):
        ssh.run(Gateway("gw"), argv)


def test_run_many_keeps_order_and_fails_only_the_gateway_that_failed(monkeypatch) -> None:
    gateways = [Gateway(f"gw{i}") for i in range(5)]

    def work(gateway: Gateway) -> str:
        if gateway.address == "gw2":
            raise UnreachableError(gateway.address, "unreachable: Connection refused")
        return gateway.address.upper()

    with Connections() as ssh:
        outcomes = ssh.run_many(gateways, work, parallelism=2)
    assert [o.gateway for o in outcomes] == gateways
    assert [o.value for o in outcomes] == ["GW0", "GW1", None, "GW3", "GW4"]
    assert [o.ok for o in outcomes] == [True, True, False, True, True]
    assert isinstance(outcomes[2].error, UnreachableError)

    def buggy(gateway: Gateway) -> str:
        raise KeyError("a bug is not a gateway failure")

    with Connections() as ssh, pytest.raises(KeyError):
        ssh.run_many(gateways, buggy)


def test_what_a_gateway_prints_reaches_the_terminal_as_one_harmless_line(monkeypatch) -> None:
    banner = b"\x1b[2J\x1b]0;owned\x07 Connection closed by evil\x1b[31m\r\n"
    monkeypatch.setattr(transport, "_run_bounded", FakeSsh(connect_stderr=banner, connect_code=255))
    with Connections() as ssh, pytest.raises(UnreachableError) as failed:
        ssh.run(Gateway("gw"), ["true"])
    assert str(failed.value).isprintable() and "\x1b" not in str(failed.value)
    assert "Connection closed by evil" in str(failed.value)


def _fake_master(path, answer):
    """A control socket that says hello, reads the request, then does `answer(conn)`."""
    import socket as socket_module
    import struct
    import threading

    server = socket_module.socket(socket_module.AF_UNIX)
    server.bind(str(path))
    server.listen(4)

    def serve():
        conn, _ = server.accept()
        try:
            conn.recv(100)
            conn.sendall(struct.pack(">III", 8, 1, 4))  # MUX_MSG_HELLO, version 4
            conn.recv(100)
            answer(conn)
        except OSError:
            pass  # the client gave up on us: what these tests want
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_a_master_that_answers_a_short_reply_is_not_taken_as_ended_and_close_does_not_crash(tmp_path):
    import struct

    from skyplan_wireguard import ssh

    conns = ssh.Connections()
    gateway = ssh.Gateway("ssh://example.invalid", timeout=2)
    path = conns._control_path(gateway)
    server = _fake_master(path, lambda conn: conn.sendall(struct.pack(">I", 2) + b"ok"))
    try:
        assert ssh._Mux.terminate([path], 2) == [False]
    finally:
        server.close()


def test_a_master_that_answers_a_byte_at_a_time_costs_one_timeout_not_one_per_byte(tmp_path):
    import struct
    import time

    from skyplan_wireguard import ssh

    def trickle(conn):
        conn.sendall(struct.pack(">I", 1000))
        for _ in range(1000):
            time.sleep(0.5)
            conn.sendall(b"x")

    conns = ssh.Connections()
    path = conns._control_path(ssh.Gateway("ssh://example.invalid", timeout=2))
    server = _fake_master(path, trickle)
    started = time.monotonic()
    try:
        assert ssh._Mux.alive(path, 2) is False
        assert time.monotonic() - started < 4
    finally:
        server.close()
