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
  private 0700 folder that `Connections.close` removes. The first command to a gateway opens it
  (one ssh process logs in, becomes the master and runs the command); skyplan asks the masters
  whether they are alive, and ends them, over their control sockets itself (`_Mux`, OpenSSH's
  PROTOCOL.mux), which costs no process.

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
import socket
import struct
import subprocess
import tempfile
import threading
import time
import weakref
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

    Each gateway gets one master connection (made by the first command, or by `connect`,
    verified and authenticated once); later commands reuse it, so a plan that asks ten questions
    of a gateway pays for one handshake, and an apply that follows its refresh pays for none.
    """

    def __init__(self) -> None:
        # mkdtemp makes the folder 0700: nobody else can connect to a master through its socket.
        self._folder = Path(tempfile.mkdtemp(prefix="skyplan-ssh-"))
        # By control socket: Gateways that differ only in timeout share one connection.
        self._masters: dict[Path, Gateway] = {}
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()
        # Should close() never be called (a caller that forgot it), the masters still end, and
        # the folder goes, when this object is collected or the interpreter exits.
        self._finalizer = weakref.finalize(self, _end_masters, self._folder, self._masters)

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
        command = " ".join(shlex.quote(w) for w in words)
        done = self._command(gateway, command, stdin)
        stderr = done.stderr
        if stderr.startswith(_STALE_SOCKET) and not _Mux.alive(self._control_path(gateway), gateway.timeout):
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

    def connect(self, gateway: Gateway) -> None:
        """Open the shared connection to `gateway` (host key verified, logged in), running nothing.

        Raises what `run` raises when ssh cannot get there; later commands reuse the connection.
        """
        self._connect(gateway)

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
        """Whether a shared connection to `gateway` is up (what `ssh -O check` tells, asked here)."""
        return _Mux.alive(self._control_path(gateway), gateway.timeout)

    def close(self) -> None:
        """End every shared connection and remove the control folder.

        Each master is told to exit over its control socket (what `ssh -O exit` sends), all at
        once and without a process each; one that does not take the request gets `ssh -O exit`.
        """
        left = [gateway for gateway, ended in _terminate_all(self._masters) if not ended]
        for gateway in left:
            try:
                self._ssh(gateway, ["-O", "exit", "--", *self._target(gateway)], None, gateway.timeout, what="exit")
            except GatewayError:
                pass  # it is gone already; the folder goes below either way
        self._masters.clear()
        self._finalizer.detach()
        shutil.rmtree(self._folder, ignore_errors=True)

    # -- internals ----------------------------------------------------------------------------------

    def _lock(self, control: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(control, threading.Lock())

    def _shared(self, control: Path, gateway: Gateway) -> bool:
        """Whether a master for `control` is known and still answers; one that died is forgotten."""
        if control not in self._masters:
            return False
        if _Mux.alive(control, gateway.timeout):
            return True
        self._masters.pop(control, None)
        return False

    def _forget_stale_socket(self, control: Path) -> None:
        if control.exists() or control.is_symlink():
            # Left by a master that was killed: with ControlMaster=yes ssh would not replace
            # it and would stay in the background unshared.
            control.unlink()

    def _command(self, gateway: Gateway, command: str, stdin: bytes | None) -> subprocess.CompletedProcess:
        """ssh running `command`: through the shared connection, or, when there is none yet, as
        the process that logs in, becomes the shared connection and runs the command in one."""
        control = self._control_path(gateway)
        target = ["--", *self._target(gateway), command]
        if not self._shared(control, gateway):
            with self._lock(control):  # one master per gateway, even when several threads ask at once
                if not self._shared(control, gateway):
                    return self._command_opening(gateway, control, target, stdin)
        done = self._ssh(gateway, ["-o", "ControlMaster=no", *target], stdin, gateway.timeout, what="command")
        if done.returncode == SSH_FAILED and not _Mux.alive(control, gateway.timeout):
            # The connection died under the command (sshd stopped, host gone): not the command's fault.
            self._masters.pop(control, None)
            raise self._classify(gateway, done.stderr)
        return done

    def _command_opening(self, gateway: Gateway, control: Path, target: list[str], stdin: bytes | None) -> subprocess.CompletedProcess:
        self._forget_stale_socket(control)
        # With ControlPersist, ssh logs in (host key verified, key accepted), forks the master
        # into the background (its stdio on /dev/null) and runs the command through it.
        options = ["-o", "ControlMaster=yes", "-o", f"ControlPersist={CONTROL_PERSIST_SECONDS}"]
        try:
            done = self._ssh(gateway, [*options, *target], stdin, gateway.timeout, what="connection and command")
        finally:
            # A master that came up stays known whatever happened to the command, so close() ends it.
            if _Mux.alive(control, gateway.timeout):
                self._masters[control] = gateway
        if done.returncode == SSH_FAILED and control not in self._masters:
            # 255 and no master: ssh could not get there (a command's own 255 leaves the master up).
            raise self._classify(gateway, done.stderr)
        return done

    def _connect(self, gateway: Gateway) -> None:
        control = self._control_path(gateway)
        if self._shared(control, gateway):
            return
        with self._lock(control):  # one master per gateway, even when several threads ask at once
            if self._shared(control, gateway):
                return
            self._forget_stale_socket(control)
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


class _Mux:
    """The two requests skyplan makes of ssh masters over their control sockets itself, in
    OpenSSH's multiplexing protocol (PROTOCOL.mux, version 4, unchanged since OpenSSH 5.x): "are
    you alive" and "exit". Each is a local round trip of well under a millisecond, where
    `ssh -O check` and `ssh -O exit` are a process each. The sockets are in the 0700 control
    folder, and a master itself checks that its peer is its own user."""

    VERSION = 4
    HELLO = 0x00000001
    ALIVE_CHECK = 0x10000004
    TERMINATE = 0x10000005
    ALIVE = 0x80000005
    OK = 0x80000001

    @classmethod
    def alive(cls, control: Path, timeout: float) -> bool:
        """Whether a master answers on `control` (MUX_C_ALIVE_CHECK)."""
        (reply,) = cls._requests([control], cls.ALIVE_CHECK, timeout)
        return isinstance(reply, bytes) and len(reply) >= 12 and struct.unpack(">II", reply[:8]) == (cls.ALIVE, 1)

    @classmethod
    def terminate(cls, controls: Sequence[Path], timeout: float) -> list[bool]:
        """Ask the master on each of `controls` to exit (MUX_C_TERMINATE), all at once; for each,
        whether it took the request or no master is there any more. A master may exit before its
        reply is sent: that is taking it too."""
        ended = []
        for reply in cls._requests(controls, cls.TERMINATE, timeout):
            ended.append(
                reply is _GONE or reply == b"" or (isinstance(reply, bytes) and len(reply) >= 8 and struct.unpack(">II", reply[:8]) == (cls.OK, 1))
            )
        return ended

    @classmethod
    def _requests(cls, controls: Sequence[Path], kind: int, timeout: float) -> list:
        """Request `kind` of the master on each of `controls`, in step: every hello is sent before
        any answer is awaited, so the masters work at once. For each: the reply; b"" when the
        master closed instead; _GONE when there is no socket; None when nothing usable answered."""
        results: list = [None] * len(controls)
        open_: dict[int, socket.socket] = {}
        # One deadline for the whole exchange: a master that answers a byte at a time, or not at
        # all, costs at most this, not a timeout per read.
        deadline = time.monotonic() + min(timeout, 5.0)
        try:
            for n, control in enumerate(controls):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(min(timeout, 5.0))
                try:
                    sock.connect(os.fspath(control))
                    cls._send(sock, struct.pack(">II", cls.HELLO, cls.VERSION))
                except FileNotFoundError:
                    sock.close()
                    results[n] = _GONE
                    continue
                except OSError:  # refused (a socket left by a killed master), or not a socket
                    sock.close()
                    continue
                open_[n] = sock
            for n, sock in list(open_.items()):
                try:
                    hello = cls._receive(sock, deadline)
                    if hello is None or len(hello) < 8 or struct.unpack(">I", hello[:4])[0] != cls.HELLO:
                        raise OSError("no mux hello")
                    cls._send(sock, struct.pack(">II", kind, 1))
                except OSError:
                    open_.pop(n).close()
            for n, sock in open_.items():
                try:
                    reply = cls._receive(sock, deadline)
                except OSError:  # timed out, or the master went away mid-way
                    reply = None
                results[n] = b"" if reply is None else reply
        finally:
            for sock in open_.values():
                sock.close()
        return results

    @staticmethod
    def _send(sock: socket.socket, body: bytes) -> None:
        sock.sendall(struct.pack(">I", len(body)) + body)

    @staticmethod
    def _receive(sock: socket.socket, deadline: float) -> bytes | None:
        """One length-prefixed message; None at end of stream. Replies here are a few bytes: a
        length beyond 64 KiB is no master's."""
        head = _read_exactly(sock, 4, deadline)
        if head is None:
            return None
        (length,) = struct.unpack(">I", head)
        if length > 65536:
            raise OSError("a mux message of more than 64 KiB")
        return _read_exactly(sock, length, deadline)


_GONE = object()  # _Mux: no socket at all where a master's was


def _read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes | None:
    data = b""
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the master did not answer in time")
        sock.settimeout(left)
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _terminate_all(masters: dict[Path, Gateway]) -> list[tuple[Gateway, bool]]:
    """Every master told to exit, at once; for each, whether it took the request."""
    items = list(masters.items())
    if not items:
        return []
    timeout = max(gateway.timeout for _, gateway in items)
    return list(zip((gateway for _, gateway in items), _Mux.terminate([control for control, _ in items], timeout)))


def _end_masters(folder: Path, masters: dict[Path, Gateway]) -> None:
    """What close() does, for a Connections that was never closed: every master told to exit."""
    _terminate_all(masters)
    masters.clear()
    shutil.rmtree(folder, ignore_errors=True)


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
