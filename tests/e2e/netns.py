"""A lab of network namespaces joined by a bridge, where generated wg-quick configs run for real.

Layout of one `Lab`, all in namespaces named `skye2e-<pid>-<n>[-<cluster>]`:

    skye2e-<pid>-<n>            the switch: a bridge `br0`, one veth port per cluster
    skye2e-<pid>-<n>-<cluster>  a "cluster": `eth0` on the underlay 192.0.2.0/24, plus its
                                WireGuard interfaces once `up` ran

A cluster `behind_nat` is not on the switch itself: a router namespace
`skye2e-<pid>-<n>-<cluster>-nat` is, with the cluster's underlay address, and hides the cluster
behind an nft masquerade rule; the cluster has only a private address (NAT_LAN) and a default
route through the router, so it can dial out but nobody can dial it.

The host's own network is never touched. The kernel may have no WireGuard module, so every
interface is a `wireguard-go` process. wireguard-go puts its control socket in
`/run/wireguard/<iface>.sock`, a folder that every network namespace shares; each cluster
therefore gets a holder process (`sleep infinity`) with a private tmpfs on `/run/wireguard`, and
every command for that cluster runs inside the holder's mount and network namespaces. That lets
all clusters use the same interface name, as real clusters would.

Commands for a cluster run behind `command_prefix(cluster)`; configs given to skyplan hooks can
use `command_prefix_template()`, which takes the cluster's name as a template argument.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

UNDERLAY = ipaddress.ip_network("192.0.2.0/24")  # TEST-NET-1: never routed anywhere real
NAT_LAN = ("198.51.100.1", "198.51.100.2", 24)  # router, cluster: TEST-NET-2, behind each NAT router
# Source NAT for everything that leaves the router towards the switch, as a home router does.
NAT_RULESET = "table ip nat {\n  chain postrouting {\n    type nat hook postrouting priority 100;\n    oifname \"eth0\" masquerade\n  }\n}\n"
NAMESPACE_PREFIX = "skye2e"
WIREGUARD_GO_ENV = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
# Each command the lab runs, and the Debian package that provides it.
REQUIRED_COMMANDS = {
    "ip": "iproute2",
    "wg": "wireguard-tools",
    "wg-quick": "wireguard-tools",
    "wireguard-go": "wireguard-go",
    "ping": "iputils-ping",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
    "sh": "dash",
    "nft": "nftables",
    "sysctl": "procps",
}
COMMAND_TIMEOUT = 20.0
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_labs_started = 0


class LabError(RuntimeError):
    """The lab could not be built, or a command inside it failed."""


def missing_prerequisites() -> list[str]:
    """Everything this machine lacks to run a lab; empty when it has it all."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root: network namespaces and TUN devices need it (run the tests as root)")
    for command, package in REQUIRED_COMMANDS.items():
        if shutil.which(command) is None:
            missing.append(f"command `{command}` (Debian package {package})")
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun: wireguard-go needs a TUN device")
    return missing


# -- wg-quick files, read independently of skyplan's own parser ------------------------------------


@dataclass(frozen=True)
class PeerSection:
    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]


@dataclass(frozen=True)
class WgQuickFile:
    """The parts of a wg-quick file that wg-quick itself (not `wg`) acts on, plus the peers."""

    addresses: tuple[str, ...]
    mtu: int | None
    peers: tuple[PeerSection, ...]

    @property
    def routes(self) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The routes wg-quick would add: one per AllowedIPs entry of every peer."""
        return {ipaddress.ip_network(cidr, strict=False) for peer in self.peers for cidr in peer.allowed_ips}


def read_wg_quick(path: Path) -> WgQuickFile:
    addresses: list[str] = []
    mtu = None
    peers: list[dict] = []
    section: dict | None = None
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.lower() == "[interface]":
            section = None
            continue
        if line.lower() == "[peer]":
            section = {"allowedips": []}
            peers.append(section)
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        key = key.lower()
        values = [v.strip() for v in value.split(",") if v.strip()]
        if section is None:
            if key == "address":
                addresses.extend(values)
            elif key == "mtu":
                mtu = int(value)
        elif key == "allowedips":
            section["allowedips"].extend(values)
        else:
            section[key] = value
    return WgQuickFile(
        addresses=tuple(addresses),
        mtu=mtu,
        peers=tuple(PeerSection(p["publickey"], p.get("endpoint"), tuple(p["allowedips"])) for p in peers),
    )


def strip_config(config_path: Path) -> str:
    """`wg-quick strip FILE`: what `wg setconf` accepts. Raises LabError if wg-quick rejects it."""
    done = subprocess.run(["wg-quick", "strip", str(config_path)], capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if done.returncode != 0:
        raise LabError(f"wg-quick strip {config_path} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def public_key_of(private_key_file: Path) -> str:
    """`wg pubkey < FILE`."""
    done = subprocess.run(
        ["wg", "pubkey"], input=Path(private_key_file).read_bytes(), capture_output=True, timeout=COMMAND_TIMEOUT
    )
    if done.returncode != 0:
        raise LabError(f"wg pubkey rejected {private_key_file}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode().strip()


# -- `wg show IFACE dump` ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerDump:
    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    latest_handshake: int  # unix seconds; 0 = never
    rx_bytes: int
    tx_bytes: int
    persistent_keepalive: int  # 0 = off


@dataclass(frozen=True)
class InterfaceDump:
    public_key: str  # the private key is dropped on purpose: a test has no use for it
    listen_port: int
    peers: dict[str, PeerDump] = field(default_factory=dict)  # by public key


def parse_wg_dump(text: str) -> InterfaceDump:
    lines = [line for line in text.splitlines() if line]
    if not lines:
        raise LabError("wg show dump printed nothing")
    _private, public, port, _fwmark = lines[0].split("\t")
    peers = {}
    for line in lines[1:]:
        key, _psk, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
        peers[key] = PeerDump(
            public_key=key,
            endpoint=None if endpoint == "(none)" else endpoint,
            allowed_ips=() if allowed == "(none)" else tuple(allowed.split(",")),
            latest_handshake=int(handshake),
            rx_bytes=int(rx),
            tx_bytes=int(tx),
            persistent_keepalive=0 if keepalive == "off" else int(keepalive),
        )
    return InterfaceDump(public_key=public, listen_port=int(port), peers=peers)


# -- the lab -------------------------------------------------------------------------------------------


@dataclass
class _Cluster:
    name: str
    namespace: str
    underlay: str
    holder: subprocess.Popen | None = None
    interfaces: dict[str, subprocess.Popen] = field(default_factory=dict)  # name -> its wireguard-go
    router: str | None = None  # the NAT router's namespace, for a cluster behind NAT


class Lab:
    """Namespaces for `clusters`, each reachable from the others at `underlay[name]`.

    Use it as a context manager (or call `start` and `close`); `close` removes every namespace
    and ends every process in them, also after a failed test. `workdir` keeps stripped configs and
    each wireguard-go's log, which helps when a test fails.
    """

    # What each holder mounts in its private mount namespace before it sleeps.
    HOLDER_MOUNTS = "mkdir -p /run/wireguard && mount -t tmpfs -o mode=0700 tmpfs /run/wireguard"

    def __init__(self, clusters: Sequence[str], workdir: Path, behind_nat: Iterable[str] = ()) -> None:
        global _labs_started
        if len(set(clusters)) != len(clusters) or not clusters:
            raise LabError(f"cluster names must be distinct and at least one: {list(clusters)}")
        if len(clusters) > 200:
            raise LabError("the underlay /24 has room for 200 clusters")
        for name in clusters:
            if not _CLUSTER_NAME.match(name):
                raise LabError(f"cluster name {name!r} cannot be part of a namespace name")
        self.name = f"{NAMESPACE_PREFIX}-{os.getpid()}-{_labs_started}"
        _labs_started += 1
        self.workdir = Path(workdir)
        # Clusters get .11, .12, ... in order: easy to tell apart from anything else in a capture.
        self._clusters = {
            name: _Cluster(name, f"{self.name}-{name}", str(UNDERLAY[11 + index])) for index, name in enumerate(clusters)
        }
        for name in behind_nat:
            self._cluster(name).router = f"{self._cluster(name).namespace}-nat"
        self._namespaces: list[str] = []  # created so far, for close()

    # -- what a test reads ------------------------------------------------------------------------

    @property
    def clusters(self) -> list[str]:
        return list(self._clusters)

    @property
    def underlay(self) -> dict[str, str]:
        """cluster -> its underlay IPv4 address (a /24 shared by all clusters)."""
        return {name: c.underlay for name, c in self._clusters.items()}

    def endpoint(self, cluster: str, port: int = 51820) -> str:
        """host:port that peers dial to reach `cluster`, for `endpoint:` in links.yaml."""
        return f"{self._cluster(cluster).underlay}:{port}"

    def namespace(self, cluster: str) -> str:
        """The network namespace's name, as `ip netns` lists it."""
        return self._cluster(cluster).namespace

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        missing = missing_prerequisites()
        if missing:
            raise LabError("cannot build the lab; missing:\n  - " + "\n  - ".join(missing))
        self.workdir.mkdir(parents=True, exist_ok=True)
        sweep_stale_namespaces()
        try:
            self._add_namespace(self.name)
            _run(["ip", "-n", self.name, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", self.name, "link", "set", "br0", "up"])
            for index, cluster in enumerate(self._clusters.values()):
                self._add_namespace(cluster.namespace)
                # On the switch: the cluster itself, or the NAT router in front of it.
                front = cluster.router or cluster.namespace
                if cluster.router:
                    self._add_namespace(cluster.router)
                port = f"port{index}"
                # Created inside the switch with its peer end moved straight into the cluster:
                # no interface ever appears in the host's namespace.
                _run(["ip", "-n", self.name, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", front])
                _run(["ip", "-n", self.name, "link", "set", port, "master", "br0", "up"])
                _run(["ip", "-n", front, "address", "add", f"{cluster.underlay}/{UNDERLAY.prefixlen}", "dev", "eth0"])
                _run(["ip", "-n", front, "link", "set", "eth0", "up"])
                _run(["ip", "-n", cluster.namespace, "link", "set", "lo", "up"])
                if cluster.router:
                    self._add_router(cluster)
                cluster.holder = self._start_holder(cluster)
            self._write_launcher()
        except BaseException:
            self.close()
            raise

    def _add_router(self, cluster: _Cluster) -> None:
        """`cluster` behind a NAT router: a private link to it, a default route, masquerade."""
        router, lan, prefix = cluster.router, NAT_LAN[0], NAT_LAN[2]
        _run(["ip", "-n", router, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", cluster.namespace])
        _run(["ip", "-n", router, "address", "add", f"{lan}/{prefix}", "dev", "lan0"])
        _run(["ip", "-n", router, "link", "set", "lan0", "up"])
        _run(["ip", "-n", router, "link", "set", "lo", "up"])
        _run(["ip", "-n", cluster.namespace, "address", "add", f"{NAT_LAN[1]}/{prefix}", "dev", "eth0"])
        _run(["ip", "-n", cluster.namespace, "link", "set", "eth0", "up"])
        _run(["ip", "-n", cluster.namespace, "route", "add", "default", "via", lan])
        _run(["ip", "netns", "exec", router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        ruleset = self.workdir / f"{cluster.name}-nat.nft"
        ruleset.write_text(NAT_RULESET)
        _run(["ip", "netns", "exec", router, "nft", "-f", str(ruleset)])

    def nat_table(self, cluster: str) -> str:
        """`nft list table ip nat` in the router in front of `cluster` (behind_nat only)."""
        router = self._cluster(cluster).router
        if router is None:
            raise LabError(f"cluster '{cluster}' is not behind NAT")
        return _run(["ip", "netns", "exec", router, "nft", "list", "table", "ip", "nat"]).stdout

    def _add_namespace(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)

    def _start_holder(self, cluster: _Cluster) -> subprocess.Popen:
        # `ip netns exec`, `unshare` and `sh` each exec the next, so the Popen's pid ends up being
        # `sleep` itself: a process whose mount namespace has the private /run/wireguard.
        script = f"{self.HOLDER_MOUNTS} && echo ready && exec sleep infinity"
        holder = subprocess.Popen(
            ["ip", "netns", "exec", cluster.namespace, "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = holder.stdout.readline() if holder.stdout else ""
        if line.strip() != "ready":
            holder.kill()
            _, err = holder.communicate(timeout=COMMAND_TIMEOUT)
            raise LabError(f"holder process for cluster '{cluster.name}' did not start: {err.strip() or line.strip()}")
        holder.stdout.close()
        return holder

    def _write_launcher(self) -> None:
        cases = "\n".join(f"    {shlex.quote(name)}) pid={c.holder.pid} ;;" for name, c in self._clusters.items())
        script = self.launcher_path
        script.write_text(
            "#!/bin/sh\n"
            f"# Runs ARGV inside one cluster of lab {self.name}: {script.name} CLUSTER ARGV...\n"
            'case "$1" in\n'
            f"{cases}\n"
            f'    *) echo "{script.name}: no cluster \'$1\' in lab {self.name}" >&2; exit 2 ;;\n'
            "esac\n"
            "shift\n"
            'exec nsenter -t "$pid" -m -n -- "$@"\n'
        )
        script.chmod(0o755)

    @property
    def launcher_path(self) -> Path:
        return self.workdir / "in-cluster"

    def close(self) -> None:
        """End every process in the lab's namespaces and delete them; collect errors, raise once."""
        problems: list[str] = []
        for cluster in self._clusters.values():
            for popen in [*cluster.interfaces.values(), *([cluster.holder] if cluster.holder else [])]:
                _stop(popen)
            cluster.interfaces.clear()
            cluster.holder = None
        for namespace in reversed(self._namespaces):
            problems.extend(_delete_namespace(namespace))
        self._namespaces.clear()
        if problems:
            raise LabError("lab teardown left things behind:\n  - " + "\n  - ".join(problems))

    # -- running commands in a cluster ------------------------------------------------------------

    def command_prefix(self, cluster: str) -> list[str]:
        """argv prefix that runs a command inside `cluster`'s network and mount namespaces.

        `lab.command_prefix("a") + ["wg", "show", "wgsky0", "dump"]` sees cluster a's interface.
        Paths in the command must be absolute: entering the mount namespace resets the cwd to /.
        """
        return ["nsenter", "-t", str(self._holder(cluster).pid), "-m", "-n", "--"]

    def command_prefix_template(self) -> list[str]:
        """Like `command_prefix`, as a skyplan argv template with the cluster left as `{{ cluster }}`.

        For links.yaml settings that one template serves every cluster with, e.g.:

            on_change: [*lab.command_prefix_template(), "bash", "-c",
                        "wg syncconf {{ interface }} <(wg-quick strip {{ config_path | quote }})"]
            status_command: [*lab.command_prefix_template(), "wg", "show", "{{ interface }}", "dump"]

        It runs a small script in `workdir` that maps the cluster's name to its holder process.
        Note that `wg syncconf` adds no routes: call `sync_routes` afterwards for new peers.
        """
        return [str(self.launcher_path), "{{ cluster }}"]

    def run(self, cluster: str, argv: Sequence[str], *, check: bool = True, env: dict | None = None, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        """Run `argv` inside `cluster`; with `check`, a failure raises LabError with its stderr."""
        full_env = {**os.environ, **(env or {})}
        return _run([*self.command_prefix(cluster), *argv], check=check, env=full_env, timeout=timeout)

    # -- WireGuard ----------------------------------------------------------------------------------

    def up(self, cluster: str, config_path: Path) -> str:
        """What `wg-quick up CONFIG` does, inside `cluster`; returns the interface name.

        wireguard-go creates the interface, `wg setconf` loads the stripped config, then the
        Address, MTU and one route per AllowedIPs entry of every peer are set, as wg-quick would.
        """
        state = self._cluster(cluster)
        config_path = Path(config_path).resolve()
        interface = config_path.stem  # wg-quick's rule: the file is named after the interface
        if interface in state.interfaces:
            raise LabError(f"{interface} is already up in cluster '{cluster}'; use reload")
        conf = read_wg_quick(config_path)
        stripped = self._stripped(cluster, config_path)
        log = open(self.workdir / f"wireguard-go-{cluster}-{interface}.log", "w")
        with log:
            # Foreground (-f): the process stays our child, so close() can stop and reap it.
            process = subprocess.Popen(
                [*self.command_prefix(cluster), "wireguard-go", "-f", interface],
                env={**os.environ, **WIREGUARD_GO_ENV, "LOG_LEVEL": "verbose"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        state.interfaces[interface] = process
        self._wait_for_socket(cluster, interface, process)
        self.run(cluster, ["wg", "setconf", interface, str(stripped)])
        self._sync_addresses(cluster, interface, conf)
        if conf.mtu:
            self.run(cluster, ["ip", "link", "set", "dev", interface, "mtu", str(conf.mtu)])
        self.run(cluster, ["ip", "link", "set", "dev", interface, "up"])
        self.sync_routes(cluster, config_path)
        return interface

    def wg_quick_up(self, cluster: str, config_path: Path) -> subprocess.CompletedProcess:
        """The real `wg-quick up CONFIG` inside `cluster`, and nothing else: wg-quick falls back to
        wireguard-go, sets addresses and routes and runs the file's PostUp itself. The daemon it
        starts lives in the cluster's namespaces, which `close` empties."""
        return self.run(cluster, ["wg-quick", "up", str(Path(config_path).resolve())], env=WIREGUARD_GO_ENV)

    def reload(self, cluster: str, config_path: Path) -> None:
        """Apply an updated config to a running interface without restarting it.

        `wg syncconf` changes only what differs, so sessions with unchanged peers survive (the
        same command the README suggests for `on_change`); then addresses, MTU and routes are
        reconciled with the file, which `wg syncconf` leaves alone.
        """
        config_path = Path(config_path).resolve()
        interface = config_path.stem
        if interface not in self._cluster(cluster).interfaces:
            raise LabError(f"{interface} is not up in cluster '{cluster}'; use up")
        conf = read_wg_quick(config_path)
        stripped = self._stripped(cluster, config_path)
        self.run(cluster, ["wg", "syncconf", interface, str(stripped)])
        self._sync_addresses(cluster, interface, conf)
        if conf.mtu:
            self.run(cluster, ["ip", "link", "set", "dev", interface, "mtu", str(conf.mtu)])
        self.sync_routes(cluster, config_path)

    def sync_routes(self, cluster: str, config_path: Path) -> None:
        """Make the routes through the config's interface exactly one per peer AllowedIPs entry."""
        config_path = Path(config_path).resolve()
        interface = config_path.stem
        wanted = read_wg_quick(config_path).routes
        present = set()
        for family in ("-4", "-6"):
            listed = self.run(cluster, ["ip", "-j", family, "route", "show", "dev", interface]).stdout
            for route in json.loads(listed or "[]"):
                if route.get("protocol") == "kernel" or route.get("dst") in (None, "default"):
                    continue  # the kernel's own (prefix, link-local) routes are not ours to manage
                present.add(ipaddress.ip_network(route["dst"], strict=False))
        for network in sorted(present - wanted, key=str):
            self.run(cluster, ["ip", "route", "del", str(network), "dev", interface])
        for network in sorted(wanted - present, key=str):
            self.run(cluster, ["ip", "route", "replace", str(network), "dev", interface])

    def _sync_addresses(self, cluster: str, interface: str, conf: WgQuickFile) -> None:
        wanted = {ipaddress.ip_interface(a) for a in conf.addresses}
        listed = json.loads(self.run(cluster, ["ip", "-j", "address", "show", "dev", interface]).stdout or "[]")
        present = {
            ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            for link in listed
            for info in link.get("addr_info", [])
            if info.get("scope") != "link"
        }
        for address in present - wanted:
            self.run(cluster, ["ip", "address", "del", str(address), "dev", interface])
        for address in wanted - present:
            self.run(cluster, ["ip", "address", "add", str(address), "dev", interface])

    def _stripped(self, cluster: str, config_path: Path) -> Path:
        # A file, not bash's <(...): it keeps the argv free of a shell and stays for post-mortems.
        # Readable only by root: it holds the private key.
        path = self.workdir / f"{cluster}-{config_path.stem}.stripped.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(strip_config(config_path))
        return path

    def _wait_for_socket(self, cluster: str, interface: str, process: subprocess.Popen) -> None:
        # /proc/PID/root resolves paths in the holder's mount namespace, private tmpfs included.
        socket = Path(f"/proc/{self._holder(cluster).pid}/root/run/wireguard/{interface}.sock")
        deadline = time.monotonic() + 10
        while not socket.exists():
            if process.poll() is not None:
                log = (self.workdir / f"wireguard-go-{cluster}-{interface}.log").read_text(errors="replace")
                raise LabError(f"wireguard-go {interface} in cluster '{cluster}' exited with {process.returncode}: {log.strip()}")
            if time.monotonic() > deadline:
                raise LabError(f"wireguard-go {interface} in cluster '{cluster}' made no control socket in 10 s")
            time.sleep(0.02)

    def wg_dump(self, cluster: str, interface: str = "wgsky0") -> InterfaceDump:
        """`wg show IFACE dump` inside `cluster`, parsed."""
        return parse_wg_dump(self.run(cluster, ["wg", "show", interface, "dump"]).stdout)

    def ping(self, src: str, dst_address: str, attempts: int = 3) -> bool:
        """Whether one ICMP echo from `src` to `dst_address` gets an answer within `attempts` tries.

        Each try waits at most a second; the first may also carry the WireGuard handshake. For
        "cannot reach" assertions, one attempt is enough: retries only make a pass slower.
        """
        for attempt in range(attempts):
            done = self.run(src, ["ping", "-n", "-q", "-c", "1", "-W", "1", dst_address], check=False)
            if done.returncode == 0:
                return True
            if attempt + 1 < attempts:
                time.sleep(0.2)
        return False

    # -- internals ----------------------------------------------------------------------------------

    def _cluster(self, name: str) -> _Cluster:
        try:
            return self._clusters[name]
        except KeyError:
            raise LabError(f"no cluster '{name}' in this lab; it has {', '.join(self._clusters)}") from None

    def _holder(self, name: str) -> subprocess.Popen:
        holder = self._cluster(name).holder
        if holder is None:
            raise LabError("the lab is not started")
        return holder


def sweep_stale_namespaces() -> list[str]:
    """Delete lab namespaces whose test process is gone (a run killed before its teardown)."""
    swept = []
    for namespace in _list_namespaces():
        match = re.match(rf"^{NAMESPACE_PREFIX}-([0-9]+)-", namespace)
        if not match or _alive(int(match.group(1))):
            continue
        _delete_namespace(namespace)
        swept.append(namespace)
    return swept


def _list_namespaces() -> list[str]:
    listed = _run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(popen: subprocess.Popen) -> None:
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout=5)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=5)


def _namespace_pids(namespace: str) -> list[int]:
    done = _run(["ip", "netns", "pids", namespace], check=False)
    return [int(p) for p in done.stdout.split()]


def _delete_namespace(namespace: str) -> list[str]:
    """Kill what still runs inside `namespace` (not our children, or a stale run's), then delete it."""
    problems = []
    pids = _namespace_pids(namespace)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid) and not _is_zombie(pid)]
        time.sleep(0.02)
    if pids:
        problems.append(f"processes {pids} still run in namespace {namespace}")
    done = _run(["ip", "netns", "del", namespace], check=False)
    if done.returncode != 0 and namespace in _list_namespaces():
        problems.append(f"ip netns del {namespace}: {done.stderr.strip()}")
    return problems


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _run(argv: Iterable[str], *, check: bool = True, env: dict | None = None, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    argv = list(argv)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LabError(f"`{shlex.join(argv)}` did not finish in {timeout:g} s") from None
    if check and done.returncode != 0:
        raise LabError(f"`{shlex.join(argv)}` exited with {done.returncode}: {(done.stderr or done.stdout).strip()}")
    return done
