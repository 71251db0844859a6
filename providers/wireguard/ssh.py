"""Running commands on WireGuard gateways over SSH, through the OpenSSH client.

Why the OpenSSH client (`ssh`) and not a Python library such as asyncssh or paramiko: users
already describe how to reach their hosts in their ssh config, and only `ssh` itself reads it
exactly as they expect: Host aliases and patterns, HostName, Port, User, IdentityFile,
UserKnownHostsFile, ProxyJump, Match blocks, certificates, the ssh agent and hardware keys. A
library re-implements a subset of that and would verify host keys against its own idea of
known_hosts. With `ssh`, "it works in my terminal" means it works in skyplan, no extra dependency
is installed, and security fixes arrive with the operating system's OpenSSH.

What skyplan forces on top of the user's config, on the command line (which ssh reads first, so
no config file can weaken it):
- `BatchMode yes`: never a password or passphrase prompt; a run without a usable key fails.
- `StrictHostKeyChecking yes`: an unknown or changed host key is an error (`HostKeyError`),
  never accepted and never reported as merely unreachable.
- `ConnectTimeout` from the per-operation timeout, and keep-alives on the shared connection.
- One shared connection per gateway (ControlMaster, ControlPersist) whose sockets live in a
  private 0700 folder that `Connections.close` removes.

The remote command is one string of `shlex.quote`d words: nothing reaches the remote shell
unquoted. Destinations are parsed strictly (`ssh://[user@]host[:port]` or a Host alias), so no
text from links.yaml or a state can become an ssh option.
"""

from __future__ import annotations

import hashlib
import math
import os
import selectors
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from skyplan.sdk import GatewayAddress, ProviderError, parse_gateway

# The names this module has always used for them.
Destination = GatewayAddress
parse_destination = parse_gateway

DEFAULT_TIMEOUT = 10.0
# Idle shared connections end on their own after this long, should close() never run.
CONTROL_PERSIST_SECONDS = 60
# ssh exits with 255 when it, not the remote command, failed.
SSH_FAILED = 255
# What ssh prints, before anything else, when a control socket has no master behind it.
_STALE_SOCKET = b"Control socket connect("
# The most a gateway may print for one command (stdout, stderr) before skyplan stops listening:
# far above what inspecting a gateway with 10,000 peers prints (a few MiB), and far below what
# would exhaust the controller's memory: a hostile host could otherwise print for the whole
# timeout, as fast as the network carries it.
OUTPUT_LIMITS = (64 * 1024 * 1024, 4 * 1024 * 1024)

def _printable(text: str, limit: int = 300) -> str:
    """One line safe for a terminal: ssh's stderr can carry a gateway's banner or a command's output."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text.strip())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


class GatewayError(ProviderError):
    """A gateway could not be used; `gateway` names it."""

    def __init__(self, gateway: str, message: str):
        self.gateway = gateway
        super().__init__(f"gateway {gateway}: {message}")


class GatewayAddressError(GatewayError):
    """The text given as a gateway is neither an ssh:// URL nor a Host alias skyplan accepts."""


class HostKeyError(GatewayError):
    """The gateway's host key is unknown or differs from known_hosts: refused, never skipped."""


class AuthenticationError(GatewayError):
    """The gateway answered but accepted none of the keys offered."""


class UnreachableError(GatewayError):
    """No SSH connection: refused, no route, name not resolved, or no answer in time."""


class GatewayTimeoutError(UnreachableError):
    """ssh or the command gave no answer within the per-operation timeout; ssh was stopped."""


class GatewayOutputError(GatewayError):
    """The gateway printed more than OUTPUT_LIMITS allow; ssh was stopped and nothing of it kept."""


class RemoteCommandError(GatewayError):
    """The command ran on the gateway and exited non-zero (raised by `run(..., check=True)`)."""

    def __init__(self, gateway: str, message: str, result: Result):
        self.result = result
        super().__init__(gateway, message)


@dataclass(frozen=True)
class Gateway:
    """A gateway as given (`address`), with the ssh config file and per-operation timeout to use."""

    address: str
    config: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    destination: Destination = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            destination = parse_destination(self.address)
        except ValueError as exc:
            raise GatewayAddressError(repr(self.address) if isinstance(self.address, str) else "?", str(exc)) from None
        if not (isinstance(self.timeout, int | float) and 0 < self.timeout <= 3600):
            raise GatewayAddressError(self.address, f"timeout {self.timeout!r} is not between 0 and 3600 seconds")
        object.__setattr__(self, "destination", destination)
        if self.config is not None:
            object.__setattr__(self, "config", Path(self.config).absolute())


@dataclass(frozen=True)
class Result:
    """What a remote command did. Output is kept out of repr: it may hold a key."""

    exit_code: int
    stdout: bytes = field(repr=False)
    stderr: bytes = field(repr=False)


T = TypeVar("T")


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """One gateway's part of `run_many`: a value, or the GatewayError that stopped it."""

    gateway: Gateway
    value: T | None = None
    error: GatewayError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Connections:
    """Shared SSH connections to gateways; use as a context manager so they always end.

    Each gateway gets one master connection (made by the first command, verified and
    authenticated once); later commands reuse it, so a plan that asks ten questions of a
    gateway pays for one handshake.
    """

    def __init__(self) -> None:
        # mkdtemp makes the folder 0700: nobody else can connect to a master through its socket.
        self._folder = Path(tempfile.mkdtemp(prefix="skyplan-ssh-"))
        # By control socket: Gateways that differ only in timeout share one connection.
        self._masters: dict[Path, Gateway] = {}
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def control_folder(self) -> Path:
        return self._folder

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- commands -----------------------------------------------------------------------------------

    def run(self, gateway: Gateway, argv: Sequence[str], stdin: bytes | None = None, *, check: bool = False) -> Result:
        """Run `argv` on `gateway`, each word quoted for the remote shell.

        Raises HostKeyError, AuthenticationError or UnreachableError when ssh could not get
        there; otherwise returns the command's exit code and output (and with `check`, raises
        RemoteCommandError if that code is not 0).
        """
        words = [] if isinstance(argv, str | bytes) else list(argv)  # a string is a command line, not argv
        if not words or not all(isinstance(w, str) for w in words):
            raise ValueError("argv must be a non-empty list of strings")
        if any("\0" in w for w in words):
            raise ValueError("argv must not contain NUL characters")
        self._connect(gateway)
        command = " ".join(shlex.quote(w) for w in words)
        done = self._ssh(gateway, ["-o", "ControlMaster=no", "--", *self._target(gateway), command], stdin, gateway.timeout, what="command")
        if done.returncode == SSH_FAILED and not self.is_connected(gateway):
            # The connection died under the command (sshd stopped, host gone): not the command's fault.
            self._masters.pop(self._control_path(gateway), None)
            raise self._classify(gateway, done.stderr)
        stderr = done.stderr
        if stderr.startswith(_STALE_SOCKET):
            # The master was killed and ssh went round it with a connection of its own. Forget the
            # master so the next command makes a new one, and keep ssh's note out of the output.
            self._masters.pop(self._control_path(gateway), None)
            stderr = stderr.split(b"\n", 1)[1] if b"\n" in stderr else b""
        result = Result(done.returncode, done.stdout, stderr)
        if check and result.exit_code != 0:
            first_line = result.stderr.decode(errors="replace").strip().splitlines()[:1]
            raise RemoteCommandError(
                gateway.address,
                f"`{_printable(words[0], 60)}` exited with {result.exit_code}" + (f": {_printable(first_line[0])}" if first_line else ""),
                result,
            )
        return result

    def run_many(self, gateways: Iterable[Gateway], fn: Callable[[Gateway], T], parallelism: int = 4) -> list[Outcome[T]]:
        """`fn(gateway)` for every gateway, `parallelism` at a time, in the order given.

        A GatewayError fails only its own gateway's outcome; the others carry on. Any other
        exception is a bug and is raised once every gateway has finished.
        """
        if parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        gateways = list(gateways)

        def one(gateway: Gateway) -> Outcome[T]:
            try:
                return Outcome(gateway, value=fn(gateway))
            except GatewayError as exc:
                return Outcome(gateway, error=exc)

        with ThreadPoolExecutor(max_workers=min(parallelism, max(1, len(gateways))), thread_name_prefix="skyplan-ssh") as pool:
            futures = [pool.submit(one, gateway) for gateway in gateways]
        return [future.result() for future in futures]

    def is_connected(self, gateway: Gateway) -> bool:
        """Whether a shared connection to `gateway` is up (`ssh -O check`)."""
        done = self._ssh(gateway, ["-O", "check", "--", *self._target(gateway)], None, gateway.timeout, what="check")
        return done.returncode == 0

    def close(self) -> None:
        """End every shared connection and remove the control folder."""
        for gateway in list(self._masters.values()):
            try:
                self._ssh(gateway, ["-O", "exit", "--", *self._target(gateway)], None, gateway.timeout, what="exit")
            except GatewayError:
                pass  # it is gone already; the folder goes below either way
        self._masters.clear()
        shutil.rmtree(self._folder, ignore_errors=True)

    # -- internals ----------------------------------------------------------------------------------

    def _connect(self, gateway: Gateway) -> None:
        with self._guard:
            control = self._control_path(gateway)
            lock = self._locks.setdefault(control, threading.Lock())
        with lock:  # one master per gateway, even when several threads ask at once
            if control in self._masters:
                return  # a master that died since is noticed by run(), which then says why
            if control.exists() or control.is_symlink():
                # Left by a master that was killed: with ControlMaster=yes ssh would not replace
                # it and would stay in the background unshared.
                control.unlink()
            # -N -f: authenticate, then fork the master into the background. Every failure to
            # reach, verify or log in to the gateway happens here, apart from any command.
            done = self._ssh(
                gateway,
                ["-o", "ControlMaster=yes", "-o", f"ControlPersist={CONTROL_PERSIST_SECONDS}", "-N", "-f", "--", *self._target(gateway)],
                None,
                gateway.timeout,
                what="connection",
            )
            if done.returncode != 0:
                raise self._classify(gateway, done.stderr)
            self._masters[control] = gateway

    def _target(self, gateway: Gateway) -> list[str]:
        # Options go before "--"; only the destination comes after it, and parse_destination
        # made sure that it cannot look like an option. User and port travel as -l and -p.
        return [gateway.destination.host]

    def _control_path(self, gateway: Gateway) -> Path:
        # Short and fixed in length: a unix socket path has ~104 bytes, and ssh adds a suffix.
        return self._folder / hashlib.sha256(repr((gateway.address, str(gateway.config))).encode()).hexdigest()[:20]

    def _base(self, gateway: Gateway) -> list[str]:
        d = gateway.destination
        control = self._control_path(gateway)
        timeout = max(1, math.ceil(gateway.timeout))
        argv = ["ssh"]
        if gateway.config is not None:
            argv += ["-F", str(gateway.config)]
        argv += [
            "-T",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={timeout}",
            "-o", f"ServerAliveInterval={max(1, timeout // 3)}",
            "-o", "ServerAliveCountMax=3",
            "-o", f"ControlPath={str(control).replace('%', '%%')}",
            "-o", "ClearAllForwardings=yes",
            "-o", "PermitLocalCommand=no",
            # A gateway is a host skyplan does not control (and a state others write names it):
            # it gets no use of the user's agent, X display or a tunnel device, whatever the config says.
            "-o", "ForwardAgent=no",
            "-o", "ForwardX11=no",
            "-o", "Tunnel=no",
        ]  # fmt: skip
        if d.user is not None:
            argv += ["-l", d.user]
        if d.port is not None:
            argv += ["-p", str(d.port)]
        return argv

    def _ssh(self, gateway: Gateway, args: list[str], stdin: bytes | None, timeout: float, *, what: str) -> subprocess.CompletedProcess:
        argv = [*self._base(gateway), *args]
        try:
            return _run_bounded(argv, input=stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise GatewayTimeoutError(gateway.address, f"no answer within {timeout:g} s ({what})") from None
        except _TooMuchOutput as exc:
            raise GatewayOutputError(gateway.address, f"printed more than {exc.limit // 1024 // 1024} MiB on {exc.stream} ({what}); it was stopped") from None
        except FileNotFoundError:
            raise UnreachableError(gateway.address, "the OpenSSH client `ssh` is not installed") from None

    @staticmethod
    def _classify(gateway: Gateway, stderr: bytes) -> GatewayError:
        text = stderr.decode(errors="replace")
        lines = [line.strip() for line in text.replace("\r", "").splitlines() if line.strip() and not line.startswith("@")]
        summary = _printable(lines[-1]) if lines else "ssh failed with no message"
        lowered = text.lower()
        if "host key verification failed" in lowered or "remote host identification has changed" in lowered:
            return HostKeyError(gateway.address, f"host key not accepted: {summary} (check known_hosts)")
        if "permission denied" in lowered or "too many authentication failures" in lowered:
            return AuthenticationError(gateway.address, f"login refused: {summary}")
        return UnreachableError(gateway.address, f"unreachable: {summary}")


class _TooMuchOutput(Exception):
    def __init__(self, stream: str, limit: int):
        self.stream, self.limit = stream, limit


def _run_bounded(argv: list[str], *, input: bytes | None, timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run(argv, input=..., capture_output=True, timeout=...), except that output
    beyond OUTPUT_LIMITS stops the process (`_TooMuchOutput`) instead of filling memory."""
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + timeout
    chunks: dict[int, list[bytes]] = {process.stdout.fileno(): [], process.stderr.fileno(): []}
    sizes = dict.fromkeys(chunks, 0)
    limits = dict(zip(chunks, OUTPUT_LIMITS))
    names = dict(zip(chunks, ("stdout", "stderr")))
    pending = memoryview(input or b"")
    try:
        with selectors.DefaultSelector() as selector:
            for fd in chunks:
                selector.register(fd, selectors.EVENT_READ)
            if process.stdin is not None:
                if pending:
                    os.set_blocking(process.stdin.fileno(), False)
                    selector.register(process.stdin.fileno(), selectors.EVENT_WRITE)
                else:
                    process.stdin.close()
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired(argv, timeout)
                for key, _ in selector.select(left):
                    fd = key.fd
                    if fd in chunks:
                        data = os.read(fd, 65536)
                        if not data:
                            selector.unregister(fd)
                            continue
                        sizes[fd] += len(data)
                        if sizes[fd] > limits[fd]:
                            raise _TooMuchOutput(names[fd], limits[fd])
                        chunks[fd].append(data)
                        continue
                    try:
                        pending = pending[os.write(fd, pending[:65536]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        pending = pending[:0]  # the command does not read it all: as subprocess.run
                    if not pending:
                        selector.unregister(fd)
                        process.stdin.close()
        code = process.wait(max(0.0, deadline - time.monotonic()))
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None and not stream.closed:
                stream.close()
    out, err = (b"".join(chunks[fd]) for fd in chunks)
    return subprocess.CompletedProcess(argv, code, out, err)
