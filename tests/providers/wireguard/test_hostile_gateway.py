"""A gateway is a host skyplan does not control: what it prints back is an attacker's text.

The hostile gateway here stands in for ssh (Connections.run) and answers the fixed scripts of
remote.py as an honest host would, except where a test has it lie. Each test asserts what must
not happen: terminal escapes or forged lines in output, another cluster's key in a peer's file,
garbage in the state, a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from skyplan_wireguard import conf, keys, remote, ssh
from skyplan_wireguard.ssh import Result
from tests.workspaces import links_yaml

ESC = "\x1b"
FORGED = "Plan: 0 to add, 0 to change, 0 to destroy."


class Gateways:
    """Hosts by address: an honest wg-quick host each, unless `lies[(host, operation)]` answers."""

    def __init__(self) -> None:
        self.hosts: dict[str, dict] = {}
        self.lies: dict[tuple[str, str], object] = {}
        self.pushed: dict[str, list[str]] = {}  # host -> configs pushed, in order

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        gateways = self

        def run(self, gateway, argv, stdin=None, *, check=False):
            return gateways.answer(gateway.destination.host, list(argv), stdin)

        monkeypatch.setattr(ssh.Connections, "run", run)
        monkeypatch.setattr(ssh.Connections, "connect", lambda self, gateway: None)  # an honest host's login

    def answer(self, host: str, argv: list[str], stdin: bytes | None) -> Result:
        operation = {
            remote._INSPECT: "inspect", remote._ENSURE_KEY: "ensure_key", remote._PUSH: "push", remote._TEARDOWN: "teardown"
        }[argv[2]]  # fmt: skip
        args = argv[4:]
        lie = self.lies.get((host, operation))
        if lie is not None:
            return lie(self, host, args) if callable(lie) else lie
        state = self.hosts.setdefault(host, {"key": None, "config": None, "up": False})
        if operation == "ensure_key":
            if state["key"] is None or (args[1] and keys.public_key(state["key"]) == args[1]):
                state["key"] = keys.generate()
            return Result(0, (keys.public_key(state["key"]) + "\n").encode(), b"")
        if operation == "push":
            state.update(config=stdin.decode(), up=True, addresses=args[3].split(), routes=args[4].split())
            self.pushed.setdefault(host, []).append(stdin.decode())
            return Result(0, b"", b"")
        if operation == "teardown":
            self.hosts.pop(host, None)
            return Result(0, b"", b"")
        return Result(0, self.inspection(state, args[1]).encode(), b"")

    @staticmethod
    def inspection(state: dict, boundary: str, **extra: str) -> str:
        """What the inspect script prints for `state`; `extra` appends raw lines to a section."""
        public = keys.public_key(state["key"]) if state["key"] else None
        out = [f"{boundary} key " + (f"ok {public}" if public else "none")]
        if state["config"] is None:
            out += [f"{boundary} config_key none", f"{boundary} config none"]
        else:
            out += [f"{boundary} config_key ok {public}", f"{boundary} config file", *state["config"].split("\n")[:-1]]
        out.append(f"{boundary} link")
        if state["up"]:
            out.append("5: wgsky0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN")
        out.append(f"{boundary} dump")
        if state["up"]:
            parsed = conf.parse(state["config"])
            out.append(f"(hidden)\t{public}\t51820\toff")
            for key, peer in parsed.peers.items():
                allowed = ",".join(peer["allowed_ips"])
                out.append(f"{key}\t(none)\t{peer['endpoint']}\t{allowed}\t0\t0\t0\t{peer['persistent_keepalive']}")
        out += extra.get("dump", [])
        out.append(f"{boundary} addresses")
        out += [f"5: wgsky0    inet {a} scope global wgsky0" for a in state.get("addresses", [])] if state["up"] else []
        out += extra.get("addresses", [])
        out.append(f"{boundary} routes4")
        out += [f"{r} scope link" for r in state.get("routes", []) if ":" not in r] if state["up"] else []
        out += extra.get("routes4", [])
        out.append(f"{boundary} routes6")
        out += extra.get("routes6", [])
        out.append(f"{boundary} end")
        return "\n".join(out) + "\n"


@pytest.fixture
def gateways(monkeypatch: pytest.MonkeyPatch) -> Gateways:
    fake = Gateways()
    fake.install(monkeypatch)
    return fake


def workspace_of(workspace: Path, clusters: list[str], links: list[tuple[str, str]]) -> None:
    text = links_yaml(
        [(name, f"192.0.2.{i + 1}:51820", [f"10.{i + 1}.0.0/16"]) for i, name in enumerate(clusters)],
        [(f"{s}-{t}", s, t) for s, t in links],
    )
    for i, name in enumerate(clusters):
        text = text.replace(f"  - name: {name}\n", f"  - name: {name}\n    gateway: ssh://root@192.0.2.{i + 1}\n", 1)
    (workspace / "links.yaml").write_text(text)


def recorded(workspace: Path) -> dict[str, dict]:
    state = json.loads((workspace / ".skyplan" / "state.json").read_text())
    return {r["name"]: r.get("computed", {}) for r in state["resources"] if r["type"] == "cluster"}


def assert_harmless(output: str) -> None:
    assert ESC not in output and "\x07" not in output and "\r" not in output
    assert "Traceback" not in output


# -- what a gateway prints: parsed, never quoted ---------------------------------------------------------


def test_inspection_text_with_zones_odd_digits_and_huge_numbers_keeps_nothing_of_it() -> None:
    b = "@@b"
    text = "\n".join([
        f"{b} key none", f"{b} config_key none", f"{b} config none",
        f"{b} link", "5: wgsky0: <UP> mtu 99999999999999999999 qdisc",
        f"{b} dump", f"(hidden)\t{keys.public_key(keys.generate())}\t²²\toff",
        f"{keys.public_key(keys.generate())}\t(none)\t{ESC}[2J{FORGED}:1\tfd00::%{ESC}[2J/64,10.0.0.0/8\t{'9' * 5000}\t0\t0\t١٢",
        f"{b} addresses", f"5: wgsky0    inet6 fd00::1%{ESC}[2J\n{FORGED}/64 scope global",
        f"{b} routes4", "10.9.0.0%x/16 dev wgsky0",
        f"{b} routes6", f"fd00:1::%{ESC}]0;owned\x07/64 dev wgsky0 metric 1024",
        f"{b} end",
    ]) + "\n"  # fmt: skip
    live = remote.parse_inspection(text, b)
    assert live.addresses == () and live.routes == ()
    assert live.mtu is None and live.listen_port is None
    (peer,) = live.peers.values()
    assert peer.allowed_ips == ("10.0.0.0/8",) and peer.latest_handshake == 0 and peer.persistent_keepalive == 0
    assert peer.endpoint is None
    assert ESC not in repr(live) and "owned" not in repr(live)


def test_a_crafted_inspection_never_raises_anything_but_a_gateway_error() -> None:
    import random

    b = "@@b"
    atoms = ["\t", " ", "\n", "%", "/", ":", "²", "١", "0", "9" * 30, "mtu", "inet", "inet6", "scope", "link", "default",
             "proto kernel", keys.public_key(keys.generate()), "(none)", "(hidden)", "ok", "bad", "none", "file", "fd00::1",
             "10.0.0.1/24", ESC + "[2J", "\u202e", "\x00", "[", "]", ",", "-", "=", "\ufffd",
             *(f"{b} {name}" for name in ("key", "config", "config_key", "link", "dump", "addresses", "routes4", "routes6", "end"))]  # fmt: skip
    rnd = random.Random(11)
    for _ in range(3000):
        text = "".join(rnd.choice(atoms) for _ in range(rnd.randint(0, 60))) + (f"\n{b} end" if rnd.random() < 0.7 else "")
        conns = RecordingConnections(Result(0, text.encode(), b""), boundary_at=5)
        try:
            live = remote.inspect(conns, ssh.Gateway("a"), "wgsky0")
        except ssh.RemoteCommandError as exc:
            assert str(exc).isprintable()
            continue
        for value in [*live.addresses, *live.routes, *(ip for p in live.peers.values() for ip in p.allowed_ips)]:
            assert value.isascii() and value.isprintable() and "%" not in value
        assert all(n is None or 0 <= n <= 65535 for n in (live.listen_port, live.mtu))


class RecordingConnections:
    """Answers one run with `result`, the inspection's boundary put into its text."""

    def __init__(self, result: Result, boundary_at: int) -> None:
        self.result, self.boundary_at = result, boundary_at

    def run(self, gateway, argv, stdin=None, *, check=False):
        boundary = argv[self.boundary_at]
        return Result(self.result.exit_code, self.result.stdout.replace(b"@@b", boundary.encode()), self.result.stderr)


def test_hostile_readings_reach_the_plan_as_escaped_fields_only(workspace, skyplan, gateways) -> None:
    workspace_of(workspace, ["a", "b"], [("a", "b")])
    assert skyplan("apply", "--auto-approve").exit_code == 0

    def lying(fake: Gateways, host: str, args: list[str]) -> Result:
        hostile = [f"fd00::1%{ESC}[2J\n{FORGED}/64", f"{ESC}[31m"]
        text = fake.inspection(
            fake.hosts[host], args[1],
            addresses=[f"5: wgsky0    inet6 {hostile[0]} scope global"],
            routes6=[f"fd00:9::%{ESC}]0;owned\x07/64 dev wgsky0", f"{hostile[1]} dev wgsky0"],
            dump=[f"{keys.public_key(keys.generate())}\t(none)\t{ESC}[2J:1\tfd00::%{ESC}[2J/64\t0\t0\t0\t0"],
        )  # fmt: skip
        # A forged line in the file too, and a peer endpoint that is no endpoint.
        text = text.replace("PersistentKeepalive = 25\n", f"PersistentKeepalive = 25\nPostUp = {ESC}[2J{FORGED}\n", 1)
        text = re.sub(r"Endpoint = \S+", f"Endpoint = {ESC}[2J:51820", text, count=1)
        return Result(0, text.encode(), b"")

    gateways.lies[("192.0.2.1", "inspect")] = lying
    for args in (["plan"], ["plan", "--json"], ["plan", "--out", "p.plan"], ["show", "p.plan"], ["show", "--json", "p.plan"]):
        done = skyplan(*args)
        assert done.exit_code in (0, 2), done.output
        assert_harmless(done.output)
        assert "owned" not in done.output and "\\u001b" not in done.output
        assert FORGED not in done.output.replace("Plan: 0 to add, 1 to change, 0 to destroy.", "")
    text = skyplan("plan").output
    assert "Changed outside skyplan:" in text and "unmanaged_peers" in text and "PostUp at line" in text


def test_a_failing_script_s_stderr_is_one_printable_line(workspace, skyplan, gateways) -> None:
    workspace_of(workspace, ["a", "b"], [("a", "b")])
    private = keys.generate()
    stderr = f"writing /etc/wireguard/wgsky0.conf failed\n{ESC}[2J{ESC}]0;owned\x07\r{FORGED}\n{private}\n{'x' * 100000}\n"
    gateways.lies[("192.0.2.1", "push")] = Result(97, b"", stderr.encode())
    done = skyplan("apply", "--auto-approve")
    assert done.exit_code == 1
    assert_harmless(done.output)
    assert private not in done.output and "\n" + FORGED not in done.output
    lines = [line for line in done.output.splitlines() if "writing /etc/wireguard/wgsky0.conf failed" in line]
    assert lines and all(len(line) < 400 and line.isprintable() for line in lines)


# -- what a gateway answers as its public key -----------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"(key)\n",
        b"\x1b[2J" + keys.public_key(keys.generate()).encode() + b"\n",
        keys.public_key(keys.generate()).encode()[:-2] + b"x=\n",  # not canonical: wg refuses it
        keys.public_key(keys.generate()).encode() + b"\n" + keys.public_key(keys.generate()).encode() + b"\n",
        b"\xff" * 44,
        b"",
    ],
)
def test_a_public_key_that_is_no_key_is_never_recorded(workspace, skyplan, gateways, answer: bytes) -> None:
    workspace_of(workspace, ["a", "b"], [("a", "b")])
    gateways.lies[("192.0.2.1", "ensure_key")] = Result(0, answer, b"")
    done = skyplan("apply", "--auto-approve")
    assert done.exit_code == 1, done.output
    assert_harmless(done.output)
    assert "gave no valid public key" in done.output
    assert "public_key" not in recorded(workspace).get("a", {})
    assert all(keys.is_canonical(c["public_key"]) for c in recorded(workspace).values() if "public_key" in c)


def test_a_gateway_that_claims_another_clusters_key_reaches_no_peer_file(workspace, skyplan, gateways) -> None:
    workspace_of(workspace, ["b", "c"], [("b", "c")])
    assert skyplan("apply", "--auto-approve").exit_code == 0
    b_key = recorded(workspace)["b"]["public_key"]
    # Cluster a joins, linked to c; its gateway answers with b's public key (which c trusts).
    text = (workspace / "links.yaml").read_text()
    text = text.replace("clusters:\n", "clusters:\n  - name: a\n    gateway: ssh://root@192.0.2.9\n    endpoint: \"192.0.2.9:51820\"\n    subnets: [10.9.0.0/16]\n", 1)
    text += "  - name: a-c\n    source: a\n    target: c\n"
    (workspace / "links.yaml").write_text(text)
    gateways.lies[("192.0.2.9", "ensure_key")] = Result(0, (b_key + "\n").encode(), b"")
    pushed_before = len(gateways.pushed.get("192.0.2.2", []))
    done = skyplan("apply", "--auto-approve")
    assert done.exit_code == 1
    assert "has the public key of cluster 'b'" in done.output
    assert recorded(workspace)["a"].get("public_key") != b_key
    for config in gateways.pushed.get("192.0.2.2", [])[pushed_before:]:  # c's gateway
        assert config.count(f"PublicKey = {b_key}") <= 1
    assert gateways.hosts["192.0.2.2"]["config"].count(f"PublicKey = {b_key}") == 1


# -- how much a gateway may print, and what ssh may give it ------------------------------------------------


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `ssh` first on PATH whose remote command does what $GATEWAY_DOES says: a hostile host."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "ssh"
    script.write_text(
        "#!/bin/sh\n"
        'for word in "$@"; do case "$word" in -N|-O) exit 0 ;; esac; done\n'
        'case "$GATEWAY_DOES" in\n'
        "  flood) exec yes 'skyplan is listening' ;;\n"
        "  flood-stderr) exec yes 'skyplan is listening' >&2 ;;\n"
        "  echo) exec cat ;;\n"
        "  hang) exec sleep 60 ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{__import__('os').environ['PATH']}")
    return script


@pytest.mark.parametrize(("does", "stream"), [("flood", "stdout"), ("flood-stderr", "stderr")])
def test_a_gateway_that_never_stops_printing_is_cut_off_not_kept_in_memory(fake_ssh, monkeypatch, does, stream) -> None:
    import resource
    import time

    monkeypatch.setenv("GATEWAY_DOES", does)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with ssh.Connections() as conns, pytest.raises(ssh.GatewayOutputError, match=f"printed more than .* MiB on {stream}") as stopped:
        conns.run(ssh.Gateway("ssh://root@192.0.2.1", timeout=60), ["true"])
    assert time.monotonic() - started < 20, "stopped at the limit, not at the timeout"
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 3 * ssh.OUTPUT_LIMITS[0] / 2**20
    assert "skyplan is listening" not in str(stopped.value)


def test_a_gateway_that_never_answers_is_stopped_at_the_timeout(fake_ssh, monkeypatch) -> None:
    import time

    monkeypatch.setenv("GATEWAY_DOES", "hang")
    started = time.monotonic()
    with ssh.Connections() as conns, pytest.raises(ssh.GatewayTimeoutError):
        conns.run(ssh.Gateway("ssh://root@192.0.2.1", timeout=1), ["true"])
    assert time.monotonic() - started < 5


def test_large_input_and_output_within_the_limits_pass_whole(fake_ssh, monkeypatch) -> None:
    monkeypatch.setenv("GATEWAY_DOES", "echo")
    config = b"".join(b"# line %d of a config for ten thousand peers\n" % i for i in range(200_000))
    with ssh.Connections() as conns:
        result = conns.run(ssh.Gateway("ssh://root@192.0.2.1", timeout=30), ["cat"], config)
    assert result.exit_code == 0 and result.stdout == config


def test_ssh_gives_a_gateway_no_agent_x_display_or_tunnel_whatever_the_config_says(tmp_path, monkeypatch) -> None:
    calls = []

    def fake(argv, **kwargs):
        calls.append(argv)
        return __import__("subprocess").CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(ssh, "_run_bounded", fake)
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n    ForwardAgent yes\n    ForwardX11 yes\n    Tunnel yes\n")
    with ssh.Connections() as conns:
        conns.run(ssh.Gateway("gw", config=config), ["true"])
    for argv in calls:
        options = " ".join(argv[: argv.index("--")])
        # ssh takes the first value it is given, and the command line comes before any file.
        for forced in ("ForwardAgent=no", "ForwardX11=no", "Tunnel=no", "ClearAllForwardings=yes", "PermitLocalCommand=no"):
            assert forced in options


# -- provider.ssh.config: a file of the repository, named by links.yaml ---------------------------------------


def with_ssh_config(workspace: Path, config: str) -> None:
    workspace_of(workspace, ["a", "b"], [("a", "b")])
    text = (workspace / "links.yaml").read_text()
    (workspace / "links.yaml").write_text(text.replace("  name: wireguard\n", f"  name: wireguard\n  ssh:\n    config: {config}\n", 1))


SECRET = "root:$6$not-for-ci-logs$0123456789::0:99999:7:::"


@pytest.mark.parametrize(
    ("plant", "config", "message"),
    [
        ("symlink", "ssh_config", "ssh_config is a symlink"),
        ("symlinked folder", "conf/ssh_config", "conf is a symlink"),
        ("folder", "ssh_config", "ssh_config cannot be read: Is a directory"),
        ("fifo", "ssh_config", "ssh_config cannot be read: Not a regular file"),
        ("nothing", "ssh_config", "ssh_config is not a file"),
    ],
)
def test_an_ssh_config_in_the_workspace_is_reached_following_no_symlink(workspace, tmp_path_factory, skyplan, gateways, plant, config, message) -> None:
    import os

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "ssh_config").write_text(SECRET + "\n")
    with_ssh_config(workspace, config)
    if plant == "symlink":
        (workspace / "ssh_config").symlink_to(elsewhere / "ssh_config")
    elif plant == "symlinked folder":
        (workspace / "conf").symlink_to(elsewhere)
    elif plant == "folder":
        (workspace / "ssh_config").mkdir()
    elif plant == "fifo":
        os.mkfifo(workspace / "ssh_config")
    done = skyplan("apply", "--auto-approve")
    assert done.exit_code == 1
    assert message in done.output and "provider.ssh.config" in done.output
    assert "not-for-ci-logs" not in done.output
    assert gateways.hosts == {}, "no gateway was contacted with that config"


def test_a_symlink_planted_after_apply_stops_the_plan(workspace, skyplan, gateways) -> None:
    with_ssh_config(workspace, "ssh_config")
    (workspace / "ssh_config").write_text("Host *\n    User root\n")
    assert skyplan("apply", "--auto-approve").exit_code == 0
    (workspace / "ssh_config").unlink()
    (workspace / "ssh_config").symlink_to("/etc/passwd")
    done = skyplan("plan")
    assert done.exit_code == 1 and "ssh_config is a symlink" in done.output
    assert "root:x:" not in done.output


def test_an_ssh_config_outside_the_workspace_is_taken_as_links_yaml_names_it(workspace, tmp_path_factory, skyplan, gateways) -> None:
    home = tmp_path_factory.mktemp("home")
    (home / "dotfiles").mkdir()
    (home / "dotfiles" / "ssh_config").write_text("Host *\n    User root\n")
    (home / "config").symlink_to(home / "dotfiles" / "ssh_config")  # ~/.ssh/config from a dotfiles repo, say
    with_ssh_config(workspace, str(home / "config"))
    done = skyplan("apply", "--auto-approve")
    assert done.exit_code == 0, done.output
    assert set(gateways.hosts) == {"192.0.2.1", "192.0.2.2"}
