"""`skyplan import --gateway`: live hosts read over SSH, with fake hosts standing in for ssh.

Each fake host answers remote.py's fixed scripts (inspect, and the key copy) as a hand-made
wg-quick host would; a test has one lie, fail or be unreachable. What must not happen: a private
or preshared key of a host in any output or file of the controller, anything written after an
error, a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from skyplan_wireguard import keys, psk, remote, ssh
from skyplan_wireguard.ssh import Result

ESC = "\x1b"


@dataclass
class Host:
    """A hand-made WireGuard host: its key in its config's PrivateKey line unless `key_file`."""

    name: str
    address: str  # on the interface, with its prefix
    private: str = field(default_factory=keys.generate, repr=False)
    peers: list[dict] = field(default_factory=list)  # public, allowed, endpoint, keepalive, psk, comment
    key_file: bool = False
    up: bool = True
    config_lines: list[str] = field(default_factory=list)  # more [Interface] lines (PostUp …)

    @property
    def public(self) -> str:
        return keys.public_key(self.private)

    def config(self) -> str:
        lines = ["[Interface]", f"Address = {self.address}", "ListenPort = 51820"]
        if not self.key_file:
            lines.append(f"PrivateKey = {self.private}")
        lines += self.config_lines
        for peer in self.peers:
            lines += ["", f"# {peer.get('comment', 'peer')}", "[Peer]", f"PublicKey = {peer['public']}"]
            if peer.get("psk"):
                lines.append(f"PresharedKey = {peer['psk']}")
            lines.append(f"AllowedIPs = {', '.join(peer['allowed'])}")
            if peer.get("endpoint"):
                lines.append(f"Endpoint = {peer['endpoint']}")
            lines.append(f"PersistentKeepalive = {peer.get('keepalive', 25)}")
        return "\n".join(lines) + "\n"

    def masked_config(self) -> str:
        """The config as inspect's awk gives it: no PrivateKey line, preshared keys hidden."""
        out = []
        for line in self.config().split("\n")[:-1]:
            if line.startswith("PrivateKey"):
                continue
            out.append("PresharedKey = (hidden)" if line.startswith("PresharedKey") else line)
        return "\n".join(out) + "\n"

    def inspection(self, boundary: str, salt: str) -> str:
        out = [f"{boundary} key " + (f"ok {self.public}" if self.key_file else "none")]
        out.append(f"{boundary} config_key " + ("none" if self.key_file else f"ok {self.public}"))
        out += [f"{boundary} config file", *self.masked_config().split("\n")[:-1]]
        out.append(f"{boundary} key_lines")
        out += [str(n) for n, line in enumerate(self.config().split("\n"), start=1) if line.startswith("PrivateKey")]
        out.append(f"{boundary} link")
        if self.up:
            out.append("5: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN")
        out.append(f"{boundary} dump")
        if self.up:
            out.append(f"(hidden)\t{self.public}\t51820\toff")
            for peer in self.peers:
                out.append(
                    f"{peer['public']}\t{'(hidden)' if peer.get('psk') else '(none)'}\t{peer.get('endpoint') or '(none)'}\t"
                    f"{','.join(peer['allowed'])}\t1700000000\t100\t100\t{peer.get('keepalive', 25)}"
                )
        out.append(f"{boundary} addresses")
        if self.up:
            out.append(f"5: wg0    inet {self.address} scope global wg0")
        out += [f"{boundary} routes4", f"{boundary} routes6", f"{boundary} forwarding 0 0", f"{boundary} psk_digests"]
        if self.up:
            out += [f"{p['public']}\t{remote.psk_digest(salt, p['psk'])}" for p in self.peers if p.get("psk")]
        out.append(f"{boundary} end")
        return "\n".join(out) + "\n"


class Hosts:
    """Fake hosts by ssh destination; `lies[(host, operation)]` answers instead, or raises."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self.lies: dict[tuple[str, str], object] = {}
        self.calls: list[tuple[str, str]] = []
        self.stdin_seen: list[bytes] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = self

        def run(self, gateway, argv, stdin=None, *, check=False):
            return fake.answer(gateway.destination.host, list(argv), stdin)

        monkeypatch.setattr(ssh.Connections, "run", run)
        monkeypatch.setattr(ssh.Connections, "connect", lambda self, gateway: None)

    def answer(self, host: str, argv: list[str], stdin: bytes | None) -> Result:
        operation = {remote._INSPECT: "inspect", remote._ADOPT_KEY: "adopt_key"}[argv[2]]
        self.calls.append((host, operation))
        if stdin is not None:
            self.stdin_seen.append(stdin)
        args = argv[4:]
        lie = self.lies.get((host, operation))
        if isinstance(lie, Exception):
            raise lie
        if lie is not None:
            return lie(self, host, args) if callable(lie) else lie
        state = self.hosts[host]
        if operation == "inspect":
            return Result(0, state.inspection(args[1], args[2]).encode(), b"")
        assert args == ["wg0", state.public]
        copied = not state.key_file
        state.key_file = True
        return Result(0, f"{'copied' if copied else 'kept'} {state.public}\n".encode(), b"")


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> Hosts:
    fake = Hosts()
    fake.install(monkeypatch)
    return fake


def mesh(hosts: Hosts, names: list[str], psk_pair: tuple[str, str] | None = None, **extra) -> dict[str, Host]:
    """A full mesh of hand-made hosts 192.0.2.N, overlay 10.77.0.N/24, a PSK on `psk_pair`."""
    made = {n: Host(n, f"10.77.0.{i + 1}/24", **extra.get(n, {})) for i, n in enumerate(names)}
    shared = psk.generate()
    for i, name in enumerate(names):
        for j, other in enumerate(names):
            if other == name:
                continue
            peer = {
                "public": made[other].public,
                "allowed": [f"10.77.0.{j + 1}/32", f"10.6{j + 1}.0.0/16"],
                "endpoint": f"192.0.2.{j + 1}:51820",
                "comment": other,
            }
            if psk_pair and {name, other} == set(psk_pair):
                peer["psk"] = shared
            made[name].peers.append(peer)
    for i, name in enumerate(names):
        hosts.hosts[f"192.0.2.{i + 1}"] = made[name]
    return made


def gateway_args(names: list[str]) -> list[str]:
    return [arg for i, n in enumerate(names) for arg in ("--gateway", f"{n}=ssh://root@192.0.2.{i + 1}")]


def tree(workspace: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(workspace)): (p.read_bytes() if p.is_file() else None) for p in sorted(workspace.rglob("*"))}


def secrets_of(made: dict[str, Host]) -> list[str]:
    return [h.private for h in made.values()] + [p["psk"] for h in made.values() for p in h.peers if p.get("psk")]


def assert_nothing_secret(workspace: Path, output: str, secrets: list[str]) -> None:
    blob = b"".join(v for v in tree(workspace).values() if v)
    for secret in secrets:
        assert secret not in output
        assert secret.encode() not in blob


def test_gateways_become_clusters_whose_keys_stay_on_them(skyplan, workspace: Path, hosts: Hosts) -> None:
    made = mesh(hosts, ["a", "b", "c"], psk_pair=("a", "b"), c={"key_file": True, "config_lines": ["PostUp = wg set %i private-key /etc/wireguard/wg0.key"]})
    preview = skyplan("import", *gateway_args(["a", "b", "c"]))
    assert preview.exit_code == 0, preview.output
    assert ("192.0.2.1", "adopt_key") not in hosts.calls  # a preview changes no host
    assert tree(workspace) == {}
    assert "ssh://root@192.0.2.3:/etc/wireguard/wg0.conf:4: PostUp is not carried" in preview.output

    result = skyplan("import", *gateway_args(["a", "b", "c"]), "--auto-approve")
    assert result.exit_code == 0, result.output
    # The key files apply expects are made on the hosts whose key was only in the config.
    assert sorted(h for h, op in hosts.calls if op == "adopt_key") == ["192.0.2.1", "192.0.2.2"]
    assert all(h.key_file for h in made.values())
    config = (workspace / "links.yaml").read_text()
    assert "interface: wg0" in config
    for i, name in enumerate("abc"):
        assert f'gateway: "ssh://root@192.0.2.{i + 1}"\n' in config and f"address: 10.77.0.{i + 1}\n" in config
        assert f"subnets: [10.6{i + 1}.0.0/16]" in config and f"endpoint: 192.0.2.{i + 1}:51820" in config
    assert config.count("preshared_key: true") == 1
    state = json.loads((workspace / ".skyplan" / "state.json").read_text())
    computed = {r["name"]: r["computed"] for r in state["resources"] if r["type"] == "cluster"}
    assert {n: c["public_key"] for n, c in computed.items()} == {n: h.public for n, h in made.items()}
    # No key of a host reached the controller: no key file, no preshared key file, no text.
    assert not (workspace / ".skyplan" / "keys").exists() or not list((workspace / ".skyplan" / "keys").iterdir())
    assert_nothing_secret(workspace, preview.output + result.output, secrets_of(made))
    assert hosts.stdin_seen == []  # nothing was sent to a host either


def test_lines_are_those_of_the_host_s_file_and_the_key_copy_is_announced(skyplan, workspace: Path, hosts: Hosts) -> None:
    mesh(hosts, ["a", "b"], a={"config_lines": ["DNS = 10.0.0.53", "PostUp = echo up"]})
    result = skyplan("import", *gateway_args(["a", "b"]))
    assert result.exit_code == 0, result.output
    # [Interface] 1, Address 2, ListenPort 3, PrivateKey 4 (dropped on the host), DNS 5, PostUp 6.
    assert "ssh://root@192.0.2.1:/etc/wireguard/wg0.conf:5: DNS is not carried" in result.output
    assert "ssh://root@192.0.2.1:/etc/wireguard/wg0.conf:6: PostUp is not carried" in result.output
    assert "ssh://root@192.0.2.1:/etc/wireguard/wg0.conf:4: warning: " not in result.output
    assert (
        "ssh://root@192.0.2.1:/etc/wireguard/wg0.conf:4: gateway ssh://root@192.0.2.1 keeps the key of wg0 in no key file: "
        "import has the host copy it into /etc/wireguard/wg0.key"
    ) in result.output
    assert all(op == "inspect" for _, op in hosts.calls)


def test_a_peering_of_a_gateway_and_an_external_peer_keeps_its_preshared_key_on_the_gateway(skyplan, workspace: Path, hosts: Hosts) -> None:
    made = mesh(hosts, ["a", "b"])
    partner = keys.public_key(keys.generate())
    made["a"].peers.append({"public": partner, "allowed": ["10.77.0.9/32"], "endpoint": "198.51.100.7:51820", "psk": psk.generate(), "comment": "partner"})
    result = skyplan("import", *gateway_args(["a", "b"]), "--auto-approve")
    assert result.exit_code == 0, result.output
    config = (workspace / "links.yaml").read_text()
    assert f'public_key: "{partner}"' in config or f"public_key: {partner}" in config
    assert "name: a.partner\n    source: a\n    target: partner\n    preshared_key: true" in config
    assert not list((workspace / ".skyplan" / "keys").glob("*.psk")) if (workspace / ".skyplan" / "keys").exists() else True
    assert_nothing_secret(workspace, result.output, secrets_of(made))


def test_a_conf_file_and_a_gateway_in_one_import_keep_their_preshared_key(skyplan, workspace: Path, hosts: Hosts) -> None:
    made = mesh(hosts, ["gw", "laptop"], psk_pair=("gw", "laptop"))
    hosts.hosts.pop("192.0.2.2")  # the laptop is a file, not a host
    (workspace / "laptop.conf").write_text(made["laptop"].config())
    result = skyplan("import", "laptop.conf", "--gateway", "gw=ssh://root@192.0.2.1", "--out", "links.yaml", "--auto-approve")
    assert result.exit_code == 0, result.output
    config = (workspace / "links.yaml").read_text()
    assert 'gateway: "ssh://root@192.0.2.1"' in config and "preshared_key: true" in config
    # The laptop's key and the peering's key were in the laptop's file: they go to the local store.
    stored = psk.read(psk.path(workspace / ".skyplan" / "keys", psk.pair("gw", "laptop")), workspace)
    assert stored == made["laptop"].peers[0]["psk"]
    assert (workspace / ".skyplan" / "keys" / "laptop.key").read_text().strip() == made["laptop"].private
    assert not (workspace / ".skyplan" / "keys" / "gw.key").exists()
    assert made["gw"].private not in result.output and made["gw"].private.encode() not in b"".join(v for v in tree(workspace).values() if v)


def test_a_preshared_key_that_differs_between_a_file_and_a_gateway_is_an_error(skyplan, workspace: Path, hosts: Hosts) -> None:
    made = mesh(hosts, ["gw", "laptop"], psk_pair=("gw", "laptop"))
    hosts.hosts.pop("192.0.2.2")
    made["laptop"].peers[0]["psk"] = psk.generate()
    (workspace / "laptop.conf").write_text(made["laptop"].config())
    result = skyplan("import", "laptop.conf", "--gateway", "gw=ssh://root@192.0.2.1", "--auto-approve")
    assert result.exit_code == 1
    assert "a different PresharedKey at each end" in result.output and "Traceback" not in result.output
    assert tree(workspace) == {"laptop.conf": (workspace / "laptop.conf").read_bytes()}
    assert_nothing_secret(workspace / ".skyplan", result.output, secrets_of(made))


def test_preshared_keys_of_two_gateways_that_differ_are_an_error_without_either_being_read(skyplan, workspace: Path, hosts: Hosts) -> None:
    made = mesh(hosts, ["a", "b"], psk_pair=("a", "b"))
    made["b"].peers[0]["psk"] = psk.generate()
    result = skyplan("import", *gateway_args(["a", "b"]), "--auto-approve")
    assert result.exit_code == 1
    assert "different PresharedKey at each end" in result.output
    assert tree(workspace) == {}
    assert ("192.0.2.1", "adopt_key") not in hosts.calls
    assert_nothing_secret(workspace, result.output, secrets_of(made))


@pytest.mark.parametrize(
    ("lie", "expected"),
    [
        (ssh.UnreachableError("ssh://root@192.0.2.2", "unreachable: No route to host"), "gateway ssh://root@192.0.2.2: unreachable"),
        (ssh.HostKeyError("ssh://root@192.0.2.2", "host key not accepted: Host key verification failed."), "gateway ssh://root@192.0.2.2: host key not accepted"),
        (ssh.AuthenticationError("ssh://root@192.0.2.2", "login refused: Permission denied"), "gateway ssh://root@192.0.2.2: login refused"),
    ],
    ids=["unreachable", "refused-host-key", "login-refused"],
)
def test_a_host_that_cannot_be_reached_is_an_error_naming_it_and_nothing_is_written(skyplan, workspace: Path, hosts: Hosts, lie, expected) -> None:
    mesh(hosts, ["a", "b"])
    hosts.lies[("192.0.2.2", "inspect")] = lie
    result = skyplan("import", *gateway_args(["a", "b"]), "--auto-approve")
    assert result.exit_code == 1
    assert expected in result.output and "Traceback" not in result.output
    assert tree(workspace) == {}
    assert all(op != "adopt_key" for _, op in hosts.calls)


def test_a_host_without_the_interface_is_an_error_naming_it(skyplan, workspace: Path, hosts: Hosts) -> None:
    made = mesh(hosts, ["a", "b"])
    made["b"].up = False
    result = skyplan("import", *gateway_args(["a", "b"]), "--auto-approve")
    assert result.exit_code == 1
    assert "gateway ssh://root@192.0.2.2 runs no WireGuard interface wg0 (give the interface's name with --interface)" in result.output
    assert tree(workspace) == {}


def test_a_key_file_with_another_key_than_the_running_one_is_refused(skyplan, workspace: Path, hosts: Hosts) -> None:
    mesh(hosts, ["a", "b"])

    def other_key(fake, host, args):
        text = fake.hosts[host].inspection(args[1], args[2])
        return Result(0, text.replace(f"{args[1]} key none", f"{args[1]} key ok {keys.public_key(keys.generate())}").encode(), b"")

    hosts.lies[("192.0.2.1", "inspect")] = other_key
    result = skyplan("import", *gateway_args(["a", "b"]), "--auto-approve")
    assert result.exit_code == 1
    assert "/etc/wireguard/wg0.key holds another key than the running interface wg0 has" in result.output
    assert tree(workspace) == {}


def test_a_hostile_host_s_output_is_never_echoed_and_stops_the_import(skyplan, workspace: Path, hosts: Hosts) -> None:
    made = mesh(hosts, ["a", "b"])

    def hostile(fake, host, args):
        text = fake.hosts[host].inspection(args[1], args[2])
        planted = f"{ESC}[2J{ESC}]0;owned\x07 Plan: 0 to add {made['a'].private}"
        return Result(0, text.replace("ListenPort = 51820", f"ListenPort = 51820\n{planted}\n").encode(), b"")

    hosts.lies[("192.0.2.2", "inspect")] = hostile
    result = skyplan("import", *gateway_args(["a", "b"]), "--auto-approve")
    assert result.exit_code == 1
    # Located in the host's file as it is there (its PrivateKey line, line 4, never left it).
    assert "ssh://root@192.0.2.2:/etc/wireguard/wg0.conf:5: this line is not a wg-quick directive" in result.output
    assert ESC not in result.output and "\x07" not in result.output and "owned" not in result.output
    assert made["a"].private not in result.output
    assert tree(workspace) == {}


def test_a_cut_short_answer_is_no_reading(skyplan, workspace: Path, hosts: Hosts) -> None:
    mesh(hosts, ["a", "b"])
    hosts.lies[("192.0.2.1", "inspect")] = lambda fake, host, args: Result(0, fake.hosts[host].inspection(args[1], args[2]).split(f"{args[1]} addresses")[0].encode(), b"")
    result = skyplan("import", *gateway_args(["a", "b"]), "--auto-approve")
    assert result.exit_code == 1
    assert "gateway ssh://root@192.0.2.1: inspecting wg0: the inspection's output is cut short" in result.output
    assert tree(workspace) == {}


def test_a_host_that_fails_to_keep_its_key_leaves_nothing_written(skyplan, workspace: Path, hosts: Hosts) -> None:
    made = mesh(hosts, ["gw", "laptop", "b"])
    hosts.hosts.pop("192.0.2.2")
    (workspace / "laptop.conf").write_text(made["laptop"].config())
    hosts.lies[("192.0.2.3", "adopt_key")] = Result(
        97, b"", b"neither /etc/wireguard/wg0.conf nor the running interface wg0 gave the private key of the interface's public key; nothing was changed\n"
    )
    args = ["laptop.conf", "--gateway", "gw=ssh://root@192.0.2.1", "--gateway", "b=ssh://root@192.0.2.3"]
    result = skyplan("import", *args, "--auto-approve")
    assert result.exit_code == 1
    assert "gateway ssh://root@192.0.2.3: neither /etc/wireguard/wg0.conf nor the running interface" in result.output
    # The laptop's key file went again: no configuration, no state, no key (the lock's file and
    # empty folders are all that is left).
    left = {k for k, v in tree(workspace).items() if v}
    assert left <= {"laptop.conf", ".skyplan/state.json.lock"}, left
    assert not (workspace / ".skyplan" / "keys").exists() or not list((workspace / ".skyplan" / "keys").iterdir())


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("ssh://root@[fd00::1]", "is no cluster name: name it, as --gateway NAME=ssh://root@[fd00::1]"),
        ("-oProxyJump", "starts with '-'"),
        ("ssh://root@host:22/x=y", "no path, query or fragment"),
        ("x=ssh://h/path", "no path, query or fragment"),
        ("bad name=ssh://h", "cluster name 'bad name' is not valid"),
    ],
)
def test_a_gateway_argument_that_is_not_one_is_refused_before_any_connection(skyplan, workspace: Path, hosts: Hosts, argument, expected) -> None:
    result = skyplan("import", "--gateway", argument)
    assert result.exit_code == 1
    assert expected in result.output
    assert hosts.calls == [] and tree(workspace) == {}


def test_two_sources_of_one_name_are_refused(skyplan, workspace: Path, hosts: Hosts) -> None:
    made = mesh(hosts, ["a", "b"])
    (workspace / "a.conf").write_text(made["a"].config())
    result = skyplan("import", "a.conf", "--gateway", "a=ssh://root@192.0.2.2")
    assert result.exit_code == 1
    assert "--gateway ssh://root@192.0.2.2: names cluster 'a', as a.conf does" in result.output
    assert hosts.calls == []


def test_an_import_needs_a_file_or_a_gateway(skyplan, workspace: Path) -> None:
    result = skyplan("import")
    assert result.exit_code == 2 and "give CONF files, --gateway hosts, or both" in result.output
