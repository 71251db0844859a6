"""A lab of SSH gateways: one network and mount namespace per gateway, each with its own sshd.

Built on `netns.Lab` (same bridge, naming, sweeping and teardown). Its first namespace,
`controller`, is where skyplan's ssh client runs; every other one is a gateway:

    controller   ssh runs here, through the `ssh` wrapper in `bin_dir` (put it first on PATH)
    <gateway>    a holder with private tmpfs on /etc/wireguard (0700) and /run/wireguard, and an
                 sshd started inside the holder's namespaces, so that its sessions see that
                 gateway's /etc/wireguard and nobody else's

The client side is all in `workdir`: a client key, a known_hosts with each gateway's host key
and an ssh config (`ssh_config`) with one Host alias per gateway, StrictHostKeyChecking yes and
BatchMode yes, so the user's own ~/.ssh never takes part.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .netns import WIREGUARD_GO_ENV, Lab, LabError, _alive, _is_zombie, _namespace_pids, _run, _stop, missing_prerequisites

SSHD = "/usr/sbin/sshd"
NFT = "/usr/sbin/nft"
CONTROLLER = "controller"
SSHD_START_TIMEOUT = 10.0
ALTERNATE_PORT = 2222  # every sshd also listens here


def missing_gateway_prerequisites() -> list[str]:
    missing = missing_prerequisites()
    if not os.access(SSHD, os.X_OK):
        missing.append(f"{SSHD} (Debian package openssh-server)")
    for command in ("ssh", "ssh-keygen"):
        if shutil.which(command) is None:
            missing.append(f"command `{command}` (Debian package openssh-client)")
    return missing


class GatewayLab(Lab):
    """`GatewayLab(["a", "b"], workdir)`: gateways a and b reachable as Host aliases `a` and `b`."""

    # A gateway is a host of its own, with its own empty home: sshd runs each command through the
    # user's login shell, which would otherwise read this machine's ~/.bashrc (on a CI machine:
    # `pyenv init`, whose rehash takes a lock that makes concurrent sessions wait up to 60 s, and
    # a session killed while holding it leaves every later one waiting).
    HOLDER_MOUNTS = (
        "mkdir -p /etc/wireguard /run/wireguard"
        " && mount -t tmpfs -o mode=0700 tmpfs /etc/wireguard"
        " && mount -t tmpfs -o mode=0700 tmpfs /run/wireguard"
        f" && mount -t tmpfs -o mode=0700 tmpfs {shlex.quote(pwd.getpwnam('root').pw_dir)}"
    )

    def __init__(self, gateways: Sequence[str], workdir: Path) -> None:
        if CONTROLLER in gateways:
            raise LabError(f"'{CONTROLLER}' is the controller's namespace, not a gateway name")
        super().__init__([CONTROLLER, *gateways], workdir)
        self.gateways = list(gateways)
        self._sshd: dict[str, subprocess.Popen] = {}

    # -- what a test uses ---------------------------------------------------------------------------

    @property
    def ssh_config(self) -> Path:
        return self.workdir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def bin_dir(self) -> Path:
        """A folder whose `ssh` runs the real client inside the controller's network namespace."""
        return self.workdir / "bin"

    def url(self, gateway: str) -> str:
        return f"ssh://root@{self.underlay[gateway]}"

    def host_key_line(self, gateway: str, port: int = 22) -> str:
        """The known_hosts line for `gateway`'s host key, as reached on `port`."""
        key_type, key = (self.workdir / gateway / "host_key.pub").read_text().split()[:2]
        host = self.underlay[gateway] if port == 22 else f"[{self.underlay[gateway]}]:{port}"
        return f"{host} {key_type} {key}"

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        missing = missing_gateway_prerequisites()
        if missing:
            raise LabError("cannot build the gateway lab; missing:\n  - " + "\n  - ".join(missing))
        super().start()
        try:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
            client_key = self.workdir / "client_key"
            _keygen(client_key)
            for gateway in self.gateways:
                folder = self.workdir / gateway
                folder.mkdir()
                _keygen(folder / "host_key")
                (folder / "authorized_keys").write_text((self.workdir / "client_key.pub").read_text())
                # Our own file keeps the host's /etc/ssh/sshd_config out; the second port is for
                # tests of Port in URLs and ssh configs.
                (folder / "sshd_config").write_text(f"Port 22\nPort {ALTERNATE_PORT}\n")
                self.start_sshd(gateway)
            self.write_known_hosts()
            aliases = "".join(f"Host {g}\n    HostName {self.underlay[g]}\n    User root\n\n" for g in self.gateways)
            self.ssh_config.write_text(
                aliases + "Host *\n"
                f"    IdentityFile {client_key}\n"
                "    IdentitiesOnly yes\n"
                f"    UserKnownHostsFile {self.known_hosts}\n"
                "    GlobalKnownHostsFile /dev/null\n"
                "    StrictHostKeyChecking yes\n"
                "    BatchMode yes\n"
            )
            self.bin_dir.mkdir()
            wrapper = self.bin_dir / "ssh"
            controller = self._holder(CONTROLLER).pid
            wrapper.write_text(f'#!/bin/sh\nexec nsenter -t {controller} -n -- {shutil.which("ssh")} "$@"\n')
            wrapper.chmod(0o755)
        except BaseException:
            self.close()
            raise

    def start_sshd(self, gateway: str) -> None:
        """Start (or start again) `gateway`'s sshd; returns once it listens."""
        if gateway in self._sshd and self._sshd[gateway].poll() is None:
            raise LabError(f"sshd of gateway '{gateway}' already runs")
        folder = self.workdir / gateway
        log_path = folder / "sshd.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [
                    *self.command_prefix(gateway), SSHD, "-D", "-e",
                    "-f", str(folder / "sshd_config"),
                    "-h", str(folder / "host_key"),
                    "-o", f"AuthorizedKeysFile={folder / 'authorized_keys'}",
                    "-o", "PidFile=none",
                    "-o", "StrictModes=no",
                    "-o", "PermitRootLogin=prohibit-password",
                    "-o", "SetEnv=" + " ".join(f"{k}={v}" for k, v in WIREGUARD_GO_ENV.items()),
                ],  # fmt: skip
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._sshd[gateway] = process
        deadline = time.monotonic() + SSHD_START_TIMEOUT
        while "Server listening" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                raise LabError(f"sshd of gateway '{gateway}' did not start: {log_path.read_text(errors='replace').strip()}")
            time.sleep(0.02)

    def stop_sshd(self, gateway: str) -> None:
        """Stop `gateway`'s sshd and every session it started: the host is down for SSH."""
        process = self._sshd.pop(gateway, None)
        if process is not None:
            _stop(process)
        # Sessions are sshd's children and outlive the listener; they hold open connections.
        for pid in _namespace_pids(self.namespace(gateway)):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("sshd"):
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass

    def close(self) -> None:
        for process in self._sshd.values():
            _stop(process)
        self._sshd.clear()
        super().close()

    def sshd_running(self, gateway: str) -> bool:
        process = self._sshd.get(gateway)
        return process is not None and process.poll() is None and _alive(process.pid)

    def path_on(self, gateway: str, path: str) -> Path:
        """`path` (absolute) as `gateway` sees it, in its own mount namespace, read without SSH."""
        return Path(f"/proc/{self._holder(gateway).pid}/root") / path.lstrip("/")

    # -- what topology tests look at ------------------------------------------------------------------

    def preshared_keys(self, gateway: str, interface: str = "wgsky0") -> dict[str, Secret | None]:
        """peer public key -> its preshared key on `gateway`'s running interface (None: none),
        read in the lab without SSH. The values are Secret: they never show in a failed assert."""
        found: dict[str, Secret | None] = {}
        for line in self.run(gateway, ["wg", "show", interface, "preshared-keys"]).stdout.splitlines():
            public, _, psk = line.partition("\t")
            found[public] = None if psk == "(none)" else Secret(psk)
        return found

    def forwarding(self, gateway: str) -> tuple[str, str]:
        """`gateway`'s net.ipv4.ip_forward and net.ipv6.conf.all.forwarding ("0" or "1")."""
        done = self.run(gateway, ["sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"])
        ipv4, ipv6 = done.stdout.split()
        return ipv4, ipv6

    def dial_out_only(self, gateway: str, port: int = 51820) -> None:
        """Let nobody dial `gateway`'s WireGuard port, as a NAT in front of it would: a stateful
        firewall in its namespace drops new inbound UDP to `port`; the answers to what it sends
        out still come in. SSH (TCP) is left alone."""
        rules = (
            "table inet skyplan_nat {\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f"    udp dport {port} ct state new drop\n"
            "  }\n"
            "}\n"
        )
        path = self.workdir / gateway / "dial-out-only.nft"
        path.write_text(rules)
        self.run(gateway, [NFT, "-f", str(path)])

    def add_host(self, gateway: str, address: str) -> None:
        """An address of one of `gateway`'s subnets on its loopback, so that pings to it answer."""
        self.run(gateway, ["ip", "address", "add", address, "dev", "lo"])

    # -- between tests that share one lab ---------------------------------------------------------

    def write_known_hosts(self) -> None:
        """known_hosts as `start` wrote it: every gateway's own host key, on port 22."""
        self.known_hosts.write_text("".join(self.host_key_line(g) + "\n" for g in self.gateways))

    def wipe(self, gateway: str) -> None:
        """Make `gateway` a fresh host again: no WireGuard interface, empty /etc/wireguard.

        Interfaces that `wg-quick up` made over SSH are wireguard-go processes that outlived
        their session; ending them (by pid, only inside this gateway) removes the interface and
        its routes with it.
        """
        namespace = self.namespace(gateway)
        ended = []
        for pid in _namespace_pids(namespace):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "wireguard-go":
                    os.kill(pid, signal.SIGKILL)
                    ended.append(pid)
            except (OSError, ProcessLookupError):
                pass
        deadline = time.monotonic() + 5
        while ended and time.monotonic() < deadline:
            ended = [pid for pid in ended if _alive(pid) and not _is_zombie(pid)]
            time.sleep(0.02)
        if ended:
            raise LabError(f"wireguard-go {ended} in gateway '{gateway}' did not end")
        # The folders are tmpfs mounts of this gateway alone: emptying them touches nothing else.
        self.run(gateway, ["find", "/etc/wireguard", "/run/wireguard", "-mindepth", "1", "-delete"])

    def reset(self) -> None:
        """Every gateway fresh and its sshd running, known_hosts as `start` wrote it."""
        self.write_known_hosts()
        for gateway in self.gateways:
            if not self.sshd_running(gateway):
                self.start_sshd(gateway)
            self.wipe(gateway)


class Secret(str):
    """A key read from a gateway: compared and searched for, never shown (repr hides it)."""

    def __repr__(self) -> str:
        return "Secret(...)"


def _keygen(path: Path) -> None:
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "skyplan-e2e", "-f", str(path)])


@contextlib.contextmanager
def running_lab(gateways: Sequence[str], workdir: Path, patch) -> Iterator[GatewayLab]:
    """A started GatewayLab whose `ssh` (first on PATH, through `patch`, a pytest MonkeyPatch)
    runs in its controller namespace without the user's agent; closed on the way out."""
    lab = GatewayLab(gateways, workdir)
    lab.start()
    try:
        patch.setenv("PATH", f"{lab.bin_dir}{os.pathsep}{os.environ['PATH']}")
        patch.delenv("SSH_AUTH_SOCK", raising=False)  # the user's agent plays no part
        yield lab
    finally:
        lab.close()
