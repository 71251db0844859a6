"""Authenticating what skyplan keeps for itself with a per-user secret that no repository holds.

Anything inside a workspace may come from a pull request, so a file skyplan wrote there for its
own later use (the configuration cache) is believed only if it carries an HMAC made with a
secret of this user's: 32 random bytes in `$XDG_CACHE_HOME/skyplan/secret` (else
`~/.cache/skyplan/secret`), created 0600 in a 0700 folder on first use. A secret that is
missing, unreadable, not private or not ours means nothing is believed: only time is lost.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from functools import lru_cache
from pathlib import Path

SECRET_BYTES = 32
_MAGIC = b"skyplan-sealed-1 "
_MAC_HEX = hashlib.sha256().digest_size * 2


def secret_path() -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):
        home = os.environ.get("HOME") or os.path.expanduser("~")
        if not home or not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "skyplan" / "secret"


def seal(purpose: str, body: bytes, workspace: Path) -> bytes | None:
    """`body` with a MAC in front, or None when there is no usable secret (then keep nothing)."""
    key = _secret(workspace)
    if key is None:
        return None
    return _MAGIC + _mac(key, purpose, body).encode("ascii") + b"\n" + body


def unseal(purpose: str, blob: bytes, workspace: Path) -> bytes | None:
    """The body of a blob `seal` made for `purpose`, or None if it was not made so."""
    if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + _MAC_HEX + 1:
        return None
    mac_end = len(_MAGIC) + _MAC_HEX
    if blob[mac_end : mac_end + 1] != b"\n":
        return None
    key = _secret(workspace)
    if key is None:
        return None
    body = blob[mac_end + 1 :]
    if not hmac.compare_digest(blob[len(_MAGIC) : mac_end], _mac(key, purpose, body).encode("ascii")):
        return None
    return body


def _mac(key: bytes, purpose: str, body: bytes) -> str:
    # The purpose is part of the MAC: a blob made for one file never passes for another.
    return hmac.new(key, purpose.encode() + b"\0" + body, hashlib.sha256).hexdigest()


def _secret(workspace: Path) -> bytes | None:
    path = secret_path()
    if path is None:
        return None
    from skyplan.repository import holding

    if holding(path, workspace) is not None:
        # A secret inside the workspace could be planted by the very files it must judge; so
        # could one elsewhere in the same checkout (HOME or XDG_CACHE_HOME inside a monorepo
        # whose links.yaml lives in a subfolder): the pull request holds the whole tree.
        return None
    return _load_or_create(str(path))


@lru_cache(maxsize=4)
def _load_or_create(path: str) -> bytes | None:
    key = _read(path)
    if key is not None:
        return key
    try:
        folder = os.path.dirname(path)
        if not _owned_where_made(folder):
            return None  # another user's home (root with `sudo -E`): nothing is made there
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None  # a folder others can write to could have its secret swapped
        # Written under a unique name and linked into place: readers never see half a secret,
        # and of two runs creating it at once, one wins and both use its secret.
        temporary = f"{path}.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, os.urandom(SECRET_BYTES))  # the OS's CSPRNG, as secrets uses
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    except OSError:
        return None
    return _read(path)


def _owned_where_made(folder: str) -> bool:
    """Whether the nearest folder that exists on the way to `folder` is this user's."""
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return os.lstat(folder).st_uid == os.geteuid()
    except OSError:
        return False


def _read(path: str) -> bytes | None:
    try:
        # The secret's folder too: in a folder others can write to, the secret could be swapped.
        folder = os.lstat(os.path.dirname(path))
        if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != os.geteuid() or folder.st_mode & 0o022:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            return None
        key = os.read(fd, SECRET_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return key if len(key) == SECRET_BYTES else None
