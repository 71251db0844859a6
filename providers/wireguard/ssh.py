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
  PROTOCOL.mux), which costs no process. A master slow to answer is waited for, never replaced
  next to itself; close() first stops logins under way (Ctrl-C), so none becomes a master later.
- With `provider.ssh.keep_connections`, masters outlive the run in a per-user folder instead,
  under a name that only the very same way of reaching the same host gives (kept.py), and the
  next run uses them without logging in; `end_kept` ends them all.

The remote command is one string of `shlex.quote`d words: nothing reaches the remote shell
unquoted. Destinations are parsed strictly (`ssh://[user@]host[:port]` or a Host alias), so no
text from links.yaml or a state can become an ssh option.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import selectors
import shlex
import shutil
import socket
import stat
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
    """A gateway as given (`address`), with the ssh config file, per-operation timeout and
    keep_connections to use."""

    address: str
    config: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    # Seconds a shared connection is kept after the run for the next one (0: ended with the run).
    keep: float = 0.0
    destination: Destination = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            destination = parse_destination(self.address)
        except ValueError as exc:
            raise GatewayAddressError(repr(self.address) if isinstance(self.address, str) else "?", str(exc)) from None
        if not (isinstance(self.timeout, int | float) and 0 < self.timeout <= 3600):
            raise GatewayAddressError(self.address, f"timeout {self.timeout!r} is not between 0 and 3600 seconds")
        if not (isinstance(self.keep, int | float) and 0 <= self.keep <= 3600):
            raise GatewayAddressError(self.address, f"keep {self.keep!r} is not between 0 and 3600 seconds")
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

    A gateway with `keep` (provider.ssh.keep_connections) has its master in the per-user folder
    of kept.py under a name that only the very same way of reaching it gives: a later run finds
    it and logs in no more, and close() leaves it to end itself once idle for `keep` seconds.
    """

    def __init__(self) -> None:
        # mkdtemp makes the folder 0700: nobody else can connect to a master through its socket.
        self._folder = Path(tempfile.mkdtemp(prefix="skyplan-ssh-"))
        # By control socket, the masters close() ends: Gateways that differ only in timeout share one.
        self._masters: dict[Path, Gateway] = {}
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()
        # Kept gateways: their control socket in the kept folder (None: this one cannot be kept).
        self._kept_paths: dict[tuple, Path | None] = {}
        self._kept: set[Path] = set()
        # ssh processes under way, which close() stops: Ctrl-C must not leave a login running.
        self._running: set[subprocess.Popen] = set()
        self._closed = False
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
        if stderr.startswith(_STALE_SOCKET):
            control = self._control_path(gateway)
            if _Mux.probe(control, gateway.timeout) in _NO_MASTER:
                # The master was killed and ssh went round it with a connection of its own. Forget the
                # master so the next command makes a new one, and keep ssh's note out of the output.
                self._masters.pop(control, None)
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
        return _Mux.probe(self._control_path(gateway), gateway.timeout) in _A_MASTER

    def close(self) -> None:
        """End every shared connection but the kept ones, and remove the control folder.

        ssh processes still under way (Ctrl-C during a command) are stopped first, so that no login
        becomes a master after this. Each master is then told to exit over its control socket (what
        `ssh -O exit` sends), all at once and without a process each, those that came up unseen
        included; one that does not take the request gets `ssh -O exit`. Kept masters are left to
        end themselves once idle for their `keep` seconds.
        """
        with self._guard:
            self._closed = True
        _stop_all(self._running)
        _terminate_all(_unseen(self._folder, self._masters))
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

    def _refuse_if_closed(self, gateway: Gateway) -> None:
        # Work queued behind a Ctrl-C (run_many's pool still runs it) must not log in anywhere.
        if self._closed:
            raise UnreachableError(gateway.address, "not attempted: the connections were closed (interrupted)")

    def _shared(self, control: Path, gateway: Gateway) -> bool:
        """Whether a master for `control` is known (or kept) and still there; one that died is forgotten.

        A master that is merely slow to answer (a busy machine, a master with much to carry) is
        still one: taking it for dead would start a second login next to it, and leave it unended.
        """
        if control not in self._masters and control not in self._kept:
            return False
        if _Mux.probe(control, gateway.timeout) in _A_MASTER:
            return True
        self._masters.pop(control, None)
        return False

    def _forget_stale_socket(self, control: Path) -> None:
        if os.path.lexists(control):
            # Left by a master that was killed (with ControlMaster=yes ssh would not replace it
            # and would stay in the background unshared), or something else put in its place:
            # removed, never followed.
            control.unlink()

    def _command(self, gateway: Gateway, command: str, stdin: bytes | None) -> subprocess.CompletedProcess:
        """ssh running `command`: through the shared connection, or, when there is none yet, as
        the process that logs in, becomes the shared connection and runs the command in one."""
        self._refuse_if_closed(gateway)
        control = self._control_path(gateway)
        target = ["--", *self._target(gateway), command]
        if not self._shared(control, gateway):
            with self._lock(control):  # one master per gateway, even when several threads ask at once
                if not self._shared(control, gateway):
                    return self._command_opening(gateway, control, target, stdin)
        done = self._ssh(gateway, ["-o", "ControlMaster=no", *target], stdin, gateway.timeout, what="command")
        self._refuse_if_closed(gateway)
        if done.returncode == SSH_FAILED and _Mux.probe(control, gateway.timeout) in _NO_MASTER:
            # The connection died under the command (sshd stopped, host gone): not the command's fault.
            self._masters.pop(control, None)
            raise self._classify(gateway, done.stderr)
        return done

    def _command_opening(self, gateway: Gateway, control: Path, target: list[str], stdin: bytes | None) -> subprocess.CompletedProcess:
        self._forget_stale_socket(control)
        # With ControlPersist, ssh logs in (host key verified, key accepted), forks the master
        # into the background (its stdio on /dev/null) and runs the command through it.
        options = ["-o", "ControlMaster=yes", "-o", f"ControlPersist={self._persist(gateway, control)}"]
        master = False
        try:
            done = self._ssh(gateway, [*options, *target], stdin, gateway.timeout, what="connection and command")
        finally:
            # A master that came up stays known whatever happened to the command, so close() ends
            # it; one that came up after close() began (Ctrl-C) is ended here and now.
            master = _Mux.probe(control, gateway.timeout) in _A_MASTER
            if master and control not in self._kept:
                with self._guard:
                    closed = self._closed
                    if not closed:
                        self._masters[control] = gateway
                if closed:
                    _Mux.terminate([control], gateway.timeout)
        self._refuse_if_closed(gateway)
        if done.returncode == SSH_FAILED and not master:
            # 255 and no master: ssh could not get there (a command's own 255 leaves the master up).
            raise self._classify(gateway, done.stderr)
        return done

    def _connect(self, gateway: Gateway) -> None:
        self._refuse_if_closed(gateway)
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
                ["-o", "ControlMaster=yes", "-o", f"ControlPersist={self._persist(gateway, control)}", "-N", "-f", "--", *self._target(gateway)],
                None,
                gateway.timeout,
                what="connection",
            )
            if done.returncode != 0:
                raise self._classify(gateway, done.stderr)
            if control not in self._kept:
                with self._guard:
                    if not self._closed:
                        self._masters[control] = gateway
                        return
                _Mux.terminate([control], gateway.timeout)
            self._refuse_if_closed(gateway)

    def _target(self, gateway: Gateway) -> list[str]:
        # Options go before "--"; only the destination comes after it, and parse_destination
        # made sure that it cannot look like an option. User and port travel as -l and -p.
        return [gateway.destination.host]

    def _persist(self, gateway: Gateway, control: Path) -> int:
        return math.ceil(gateway.keep) if control in self._kept else CONTROL_PERSIST_SECONDS

    def _control_path(self, gateway: Gateway) -> Path:
        if gateway.keep:
            kept = self._kept_path(gateway)
            if kept is not None:
                return kept
        # Short and fixed in length: a unix socket path has ~104 bytes, and ssh adds a suffix.
        return self._folder / hashlib.sha256(repr((gateway.address, str(gateway.config))).encode()).hexdigest()[:20]

    def _kept_path(self, gateway: Gateway) -> Path | None:
        """The kept socket of `gateway` (see kept.py): asked of `ssh -G` once per run and gateway.
        None when ssh cannot resolve it (the login will say why) or its files cannot be told."""
        key = (gateway.address, gateway.config, gateway.timeout, gateway.keep)
        with self._guard:
            if key in self._kept_paths:
                return self._kept_paths[key]
        from skyplan_wireguard import kept

        try:
            folder = kept.private_folder()
        except kept.KeptFolderError as exc:  # refused, and said so, before any connection
            raise GatewayError(gateway.address, str(exc)) from None
        argv = [*self._options(gateway), "-o", f"ControlPersist={math.ceil(gateway.keep)}", "--", *self._target(gateway)]
        try:
            resolved = _run_bounded([*argv[:1], "-G", *argv[1:]], input=None, timeout=gateway.timeout, running=self._running)
        except (subprocess.TimeoutExpired, _TooMuchOutput, FileNotFoundError):
            resolved = None
        name = kept.socket_name(argv, gateway.config, resolved.stdout) if resolved is not None and resolved.returncode == 0 else None
        path = folder / name if name is not None else None
        with self._guard:
            self._kept_paths[key] = path
            if path is not None:
                self._kept.add(path)
        return path

    def _options(self, gateway: Gateway) -> list[str]:
        """`ssh`, the config file and every option skyplan forces, but the control socket."""
        d = gateway.destination
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

    def _base(self, gateway: Gateway) -> list[str]:
        control = self._control_path(gateway)
        options = self._options(gateway)
        return [*options, "-o", f"ControlPath={str(control).replace('%', '%%')}"]

    def _ssh(self, gateway: Gateway, args: list[str], stdin: bytes | None, timeout: float, *, what: str) -> subprocess.CompletedProcess:
        argv = [*self._base(gateway), *args]
        try:
            return _run_bounded(argv, input=stdin, timeout=timeout, running=self._running)
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


def end_kept() -> int:
    """End every kept connection of this user's (the masters in kept.py's folder), all at once
    over their sockets; removes the sockets of masters that are gone. How many were running."""
    from skyplan_wireguard import kept

    folder = kept.folder_path()
    if folder is None or not os.path.isdir(folder) or os.path.islink(folder):
        return 0
    controls = kept.sockets(folder)
    states = [_Mux.probe(control, 5.0) for control in controls]
    running = [control for control, state in zip(controls, states) if state in _A_MASTER]
    _Mux.terminate(running, 5.0)
    for control, state in zip(controls, states):
        if state in _NO_MASTER:
            with contextlib.suppress(OSError):
                control.unlink()
    return len(running)


# What _Mux.probe finds on a control socket.
ALIVE, SLOW, GONE, FOREIGN = "alive", "slow", "gone", "foreign"
_A_MASTER = (ALIVE, SLOW)  # a master is there (a slow one too: its own commands have their timeout)
_NO_MASTER = (GONE, FOREIGN)  # none of ours: the socket may be removed and a new master made
# How long a master may take to answer a question over its socket before it counts as slow.
MUX_WAIT = 5.0


class _Mux:
    """The two requests skyplan makes of ssh masters over their control sockets itself, in
    OpenSSH's multiplexing protocol (PROTOCOL.mux, version 4, unchanged since OpenSSH 5.x): "are
    you alive" and "exit". Each is a local round trip of well under a millisecond, where
    `ssh -O check` and `ssh -O exit` are a process each. The sockets are in a 0700 folder; a
    socket that is not this user's, or whose listener is not, is not talked to (FOREIGN), and a
    master itself checks that its peer is its own user."""

    VERSION = 4
    HELLO = 0x00000001
    ALIVE_CHECK = 0x10000004
    TERMINATE = 0x10000005
    ALIVE = 0x80000005
    OK = 0x80000001

    @classmethod
    def probe(cls, control: Path, timeout: float) -> str:
        """What is on `control`: ALIVE (a master answered MUX_C_ALIVE_CHECK), SLOW (something
        accepted the connection but did not answer within MUX_WAIT), GONE (no socket, nobody
        listening, or it hung up), FOREIGN (not this user's, or not a master)."""
        (reply,) = cls._requests([control], cls.ALIVE_CHECK, timeout)
        if reply is _GONE or reply == b"":
            return GONE
        if reply is _SLOW:
            return SLOW
        if isinstance(reply, bytes) and len(reply) >= 12 and struct.unpack(">II", reply[:8]) == (cls.ALIVE, 1):
            return ALIVE
        return FOREIGN

    @classmethod
    def alive(cls, control: Path, timeout: float) -> bool:
        """Whether a master answers on `control` (MUX_C_ALIVE_CHECK)."""
        return cls.probe(control, timeout) == ALIVE

    @classmethod
    def terminate(cls, controls: Sequence[Path], timeout: float) -> list[bool]:
        """Ask the master on each of `controls` to exit (MUX_C_TERMINATE), all at once; for each,
        whether it took the request or no master of ours is there any more. A master may exit
        before its reply is sent: that is taking it too."""
        ended = []
        for reply in cls._requests(controls, cls.TERMINATE, timeout):
            ended.append(
                reply is _GONE
                or reply is _FOREIGN
                or reply == b""
                or (isinstance(reply, bytes) and len(reply) >= 8 and struct.unpack(">II", reply[:8]) == (cls.OK, 1))
            )
        return ended

    @classmethod
    def _requests(cls, controls: Sequence[Path], kind: int, timeout: float) -> list:
        """Request `kind` of the master on each of `controls`, in step: every hello is sent before
        any answer is awaited, so the masters work at once. For each: the reply; b"" when the
        master closed instead; _GONE when there is no socket or nobody listens on it; _FOREIGN
        when it is not a socket of this user's; _SLOW when no answer came in time; None when
        what answered is no master."""
        from skyplan_wireguard import kept

        results: list = [None] * len(controls)
        open_: dict[int, socket.socket] = {}
        # One deadline for the whole exchange: a master that answers a byte at a time, or not at
        # all, costs at most this, not a timeout per read.
        wait = min(timeout, MUX_WAIT)
        deadline = time.monotonic() + wait
        try:
            for n, control in enumerate(controls):
                try:
                    info = os.lstat(control)
                except FileNotFoundError:
                    results[n] = _GONE
                    continue
                except OSError:
                    continue
                if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.geteuid():
                    results[n] = _FOREIGN  # a symlink, a file, another user's socket: never connected to
                    continue
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(wait)
                try:
                    sock.connect(os.fspath(control))
                    if not kept.peer_is_ours(sock):
                        sock.close()
                        results[n] = _FOREIGN
                        continue
                    cls._send(sock, struct.pack(">II", cls.HELLO, cls.VERSION))
                except (FileNotFoundError, ConnectionRefusedError):  # a socket left by a killed master
                    sock.close()
                    results[n] = _GONE
                    continue
                except TimeoutError:  # a full backlog: something listens, and is not keeping up
                    sock.close()
                    results[n] = _SLOW
                    continue
                except OSError:
                    sock.close()
                    continue
                open_[n] = sock
            for n, sock in list(open_.items()):
                try:
                    hello = cls._receive(sock, deadline)
                    if hello is None:
                        results[n] = b""
                        raise OSError("closed before its hello")
                    if len(hello) < 8 or struct.unpack(">I", hello[:4])[0] != cls.HELLO:
                        raise OSError("no mux hello")
                    cls._send(sock, struct.pack(">II", kind, 1))
                except TimeoutError:
                    results[n] = _SLOW
                    open_.pop(n).close()
                except OSError:
                    open_.pop(n).close()
            for n, sock in open_.items():
                try:
                    reply = cls._receive(sock, deadline)
                except TimeoutError:
                    reply = _SLOW
                except OSError:  # the master went away mid-way
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


_GONE = object()  # _Mux: no socket, or nobody listening on it, where a master's was
_SLOW = object()  # _Mux: no answer in time
_FOREIGN = object()  # _Mux: not a socket of this user's


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


def _stop_all(running: set[subprocess.Popen]) -> None:
    """Stop the ssh processes under way and reap them: none of them becomes a master later. A
    master one of them made already has its socket in the folder (ssh binds it before it forks)."""
    processes = list(running)
    for process in processes:
        with contextlib.suppress(OSError):
            process.kill()
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            process.wait(5)


def _unseen(folder: Path, masters: dict[Path, Gateway]) -> dict[Path, Gateway]:
    """Masters in `folder` that no command got to register (a login that was under way when
    close() began), to be ended with the others."""
    from skyplan_wireguard import kept

    stand_in = Gateway("unseen-master", timeout=MUX_WAIT)  # only its timeout is used
    return {control: stand_in for control in kept.sockets(folder) if control not in masters}


def _end_masters(folder: Path, masters: dict[Path, Gateway]) -> None:
    """What close() does, for a Connections that was never closed: every master told to exit."""
    _terminate_all({**_unseen(folder, masters), **masters})
    masters.clear()
    shutil.rmtree(folder, ignore_errors=True)

class _TooMuchOutput(Exception):
    def __init__(self, stream: str, limit: int):
        self.stream, self.limit = stream, limit


def _run_bounded(argv: list[str], *, input: bytes | None, timeout: float, running: set | None = None) -> subprocess.CompletedProcess:
    """subprocess.run(argv, input=..., capture_output=True, timeout=...), except that output
    beyond OUTPUT_LIMITS stops the process (`_TooMuchOutput`) instead of filling memory. The
    process is in `running` while it runs."""
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if running is not None:
        running.add(process)
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
        if running is not None:
            running.discard(process)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None and not stream.closed:
                stream.close()
    out, err = (b"".join(chunks[fd]) for fd in chunks)
    return subprocess.CompletedProcess(argv, code, out, err)
