"""SSH connections kept across runs (`provider.ssh.keep_connections`): the private folder their
control sockets live in, and the socket name that ties a master to one exact way of reaching a host.

A kept master is a logged-in connection that any process of this user may use through its socket,
as with Ansible's default (ControlPersist=60s in ~/.ansible/cp). So the socket may be found only
by a run that would have made exactly the same connection: its name is a digest of the ssh
program, every option skyplan forces, the destination, ssh's own resolution of it (`ssh -G`: the
HostName, User, Port, IdentityFile, known_hosts files, ProxyJump... after Host and Match blocks),
and the identity (inode, size, times) of the ssh config files, the files they Include, the
known_hosts files and the identity files. A changed config, host key file or key gives another
name, so a new login, with the host key verified as always; the old master ends on its own once
idle for `keep_connections`.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import socket
import stat
import struct
from pathlib import Path

from skyplan.sdk import ProviderError, repository

# The part of a digest a socket is named by: 128 bits, and short enough for a unix socket path.
NAME_HEX = 32
# sun_path holds 108 bytes with its NUL; ssh first binds "<ControlPath>.<16 random characters>".
_SOCKET_PATH_MOST = 107 - 17
# Bumped whenever what goes into a name changes, so that no name of an older scheme matches.
_SCHEME = "skyplan-kept-1"
_CONFIG_LIMIT = 1 << 20
_INCLUDE = re.compile(r"^\s*include(?:\s*=\s*|\s+)(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
# What `ssh -G` prints whose files the master was made with.
_FILE_OPTIONS = ("userknownhostsfile", "globalknownhostsfile", "identityfile", "certificatefile", "revokedhostkeys")


class KeptFolderError(ProviderError):
    """The folder for kept connections is missing, not private or not this user's: not used."""


def folder_path() -> Path | None:
    """Where kept sockets go: $XDG_RUNTIME_DIR/skyplan/ssh (a per-user 0700 tmpfs on most
    systems), else $XDG_CACHE_HOME or ~/.cache, as skyplan's other per-user files."""
    for variable in ("XDG_RUNTIME_DIR", "XDG_CACHE_HOME"):
        base = os.environ.get(variable)
        if base and os.path.isabs(base):
            return Path(base) / "skyplan" / "ssh"
    home = os.environ.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".cache" / "skyplan" / "ssh" if home and os.path.isabs(home) else None


def private_folder() -> Path:
    """The folder of kept sockets, made 0700 when missing; KeptFolderError unless it is a real
    folder (no symlink), owned by this user, that nobody else may enter, in a parent nobody
    else may write to."""
    folder = folder_path()
    if folder is None:
        raise KeptFolderError("provider.ssh.keep_connections: no folder for kept connections (set XDG_RUNTIME_DIR or HOME)")
    if len(os.fsencode(folder)) + 1 + NAME_HEX > _SOCKET_PATH_MOST:
        raise KeptFolderError(f"provider.ssh.keep_connections: {folder} is too long a path for a unix socket; set XDG_RUNTIME_DIR to a shorter folder")
    base, parent = folder.parent.parent, folder.parent
    _make_base(base)
    for path, mode in ((parent, 0o700), (folder, 0o700)):
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            pass
        except OSError as exc:
            raise KeptFolderError(f"provider.ssh.keep_connections: cannot make {path}: {exc.strerror or exc}") from None
    _check(base, follow=True, private=False)
    _check(parent, follow=False, private=False)
    _check(folder, follow=False, private=True)
    return folder


def _make_base(base: Path) -> None:
    if base.is_dir():
        return
    existing = base
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    try:
        if os.lstat(existing).st_uid != os.geteuid():
            raise KeptFolderError(f"provider.ssh.keep_connections: {base} does not exist, and {existing} is not yours to make it in")
        os.makedirs(base, 0o700, exist_ok=True)
    except OSError as exc:
        raise KeptFolderError(f"provider.ssh.keep_connections: cannot make {base}: {exc.strerror or exc}") from None


def _check(path: Path, *, follow: bool, private: bool) -> None:
    """`path` as a folder of this user's that others cannot change (and, with `private`, enter)."""
    prefix = f"provider.ssh.keep_connections: {path}"
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        raise KeptFolderError(f"{prefix} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        raise KeptFolderError(f"{prefix} is a symlink; kept connections need a folder of your own there (remove it)")
    if not stat.S_ISDIR(info.st_mode):
        raise KeptFolderError(f"{prefix} is not a folder (remove it)")
    # The base (XDG_RUNTIME_DIR, ~/.cache) may be root's; the folders skyplan made must be ours.
    owners = (os.geteuid(), 0) if follow else (os.geteuid(),)
    if info.st_uid not in owners:
        raise KeptFolderError(f"{prefix} belongs to user {info.st_uid}, not to you ({os.geteuid()}); kept connections are not used")
    mode = stat.S_IMODE(info.st_mode)
    if private and mode & 0o077:
        raise KeptFolderError(f"{prefix} has mode {mode:04o}; others could reach your connections through it (chmod 700 it)")
    if mode & 0o022 and not (follow and mode & stat.S_ISVTX):
        raise KeptFolderError(f"{prefix} has mode {mode:04o}; others could swap what is in it (chmod go-w it)")


def inside(folder: Path, root: Path) -> Path | None:
    """The workspace `root` or its git checkout, when `folder` is inside it: sockets there could be
    planted by the files of a pull request."""
    return repository.holding(folder, root)


# -- the name -------------------------------------------------------------------------------------------


def socket_name(argv: list[str], config: Path | None, resolved: bytes) -> str | None:
    """The name of the kept socket for the ssh command line `argv` (program, options and
    destination; no ControlPath), given ssh's resolution of it (`ssh -G` output); None when the
    files ssh would use cannot be told (a %-token in their names): then nothing is kept."""
    files = _resolved_files(resolved)
    if files is None:
        return None
    program = shutil.which(argv[0]) or argv[0]
    identity = (
        _SCHEME,
        os.geteuid(),
        (program, _file_identity(program)),
        tuple(argv[1:]),
        resolved,
        tuple((path, _file_identity(path)) for path in _config_files(config)),
        tuple((path, _file_identity(path)) for path in files),
        # Keys offered by an agent are part of who logs in.
        os.environ.get("SSH_AUTH_SOCK"),
    )
    return hashlib.sha256(repr(identity).encode()).hexdigest()[:NAME_HEX]


def _file_identity(path: str) -> tuple | None:
    """What changes when a file is written, replaced, moved or chmodded; None if it is not there."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_mode)


def _resolved_files(resolved: bytes) -> list[str] | None:
    """The files `ssh -G` says the connection uses. It prints known_hosts files expanded; identity
    and certificate files as written, so their ${VAR}, ~ and common %-tokens are expanded here
    (one still unknown is named as written). None when a known_hosts file cannot be told."""
    text = resolved.decode(errors="replace")
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), []).extend(value.split())
    first = lambda key: (options.get(key) or [""])[0]  # noqa: E731
    tokens = {"%%": "%", "%d": os.path.expanduser("~"), "%u": _local_user(), "%r": first("user"), "%h": first("hostname"), "%p": first("port")}
    files = []
    for key in _FILE_OPTIONS:
        for word in options.get(key, []):
            if word.lower() == "none":
                continue
            if key in ("identityfile", "certificatefile"):
                word = re.sub(r"%.", lambda m: tokens.get(m.group(0), m.group(0)), os.path.expandvars(word))
            elif "%" in word or "$" in word:
                return None
            files.append(os.path.expanduser(word))
    return files


def _local_user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _config_files(config: Path | None) -> list[str]:
    """The ssh config files ssh reads (`-F` file, else the user's and the system's), and those
    their Include lines name (one level: their own Includes are covered by `ssh -G` for the host)."""
    ssh_dir = os.path.expanduser("~/.ssh")
    tops = [(str(config), ssh_dir)] if config is not None else [(os.path.join(ssh_dir, "config"), ssh_dir), ("/etc/ssh/ssh_config", "/etc/ssh")]
    found = []
    for path, relative_to in tops:
        found.append(path)
        try:
            with open(path, "rb") as handle:
                text = handle.read(_CONFIG_LIMIT).decode(errors="replace")
        except OSError:
            continue
        for line in _INCLUDE.findall(text):
            for pattern in line.split():
                pattern = os.path.expanduser(pattern.strip('"'))
                if "%" in pattern or "$" in pattern:
                    found.append(pattern)  # named, not resolved: ssh -G covers its effect on the host
                    continue
                if not os.path.isabs(pattern):
                    pattern = os.path.join(relative_to, pattern)
                found.extend(sorted(glob.glob(pattern))[:64] or [pattern])
    return found


# -- ending them ----------------------------------------------------------------------------------------


def sockets(folder: Path) -> list[Path]:
    """The control sockets of this user's in `folder` (symlinks and anything else left out)."""
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.geteuid():
            found.append(Path(entry.path))
    return found


def peer_is_ours(sock: socket.socket) -> bool:
    """Whether the process listening on the other end of `sock` runs as this user."""
    try:
        _, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except (OSError, AttributeError):
        return False
    return uid == os.geteuid()


_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
