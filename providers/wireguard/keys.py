"""X25519 key pairs in WireGuard's base64 form, through the `cryptography` package."""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path

# wg accepts only canonical base64: 44 characters whose 43rd encodes the last 4 bits as zeros.
_LAST_DATA_CHARACTER = "AEIMQUYcgkosw048"


class KeyFileError(ValueError):
    """A key file exists but does not hold a valid WireGuard private key."""


# The raw byte forms (private_bytes_raw, public_bytes_raw) need no import of the library's
# serialization package, which brings its SSH key formats and ciphers with it: 10 ms of each
# command that makes or reads a key.


def generate() -> str:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = X25519PrivateKey.generate().private_bytes_raw()
    return base64.b64encode(raw).decode("ascii")


def generate_pair() -> tuple[str, str]:
    """A new private key and its public key: derived from the key object at hand, which costs
    as much again as making the key when done later from its text."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    key = X25519PrivateKey.generate()
    private = key.private_bytes_raw()
    public = key.public_key().public_bytes_raw()
    return base64.b64encode(private).decode("ascii"), base64.b64encode(public).decode("ascii")


def public_key(private: str) -> str:
    # Imported here: `skyctl get` loads this module but never needs the library.
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = base64.b64decode(private)
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    return base64.b64encode(public).decode("ascii")


def is_canonical(key: str) -> bool:
    if len(key) != 44 or key[43] != "=" or key[42] not in _LAST_DATA_CHARACTER:
        return False
    try:
        return len(base64.b64decode(key, validate=True)) == 32
    except binascii.Error:
        return False


def parse(raw: bytes) -> str | None:
    """The private key a key file's bytes hold, or None if they hold none."""
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    return text if is_canonical(text) else None


def read(path: Path, within: Path | None = None, *, adopting: bool = False) -> str | None:
    """The private key stored at `path`, None if there is no file; KeyFileError if it is bad.

    The file is reached from `within` without following a symlink (UnsafePathError). With
    `adopting` (a key file found for a cluster the state does not hold yet), the file must be
    private to this user, as skyplan writes it: one that others can read is no secret, and one
    checked out from a repository (git writes 0644) would hand its author the cluster's key.
    """
    from skyplan.sdk import atomic

    try:
        raw = atomic.read_bytes(path, within, limit=_KEY_FILE_LIMIT, accept=_private(path) if adopting else None)
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror or exc}") from None
    if raw is None:
        return None
    text = parse(raw)
    if text is None:
        # Never quote the bytes: a file in the key's place may hold anything.
        raise KeyFileError(f"key file {path} does not hold a WireGuard private key")
    from skyplan.sdk import repository

    if repository.tracked(path):
        raise KeyFileError(
            f"key file {path} is tracked by git: a key that a repository holds came from a commit, and whoever "
            f"wrote that commit knows it. It is not used: remove it from the repository (git rm --cached) and "
            f"give the cluster a new key with --replace cluster.{path.stem}"
        )
    return text


def not_a_secret(info: os.stat_result) -> str | None:
    """Why a key file with this stat is no secret of this user's, or None if it is one."""
    if info.st_nlink != 1:
        # skyplan writes each key by rename, so its files have one name. A second name is another
        # file under this one: another cluster's private key, say, which two clusters (or, having a
        # preshared key's shape, both ends of a peering) would then share.
        return "has other names (hard links), so it may be another secret file"
    if info.st_uid != os.geteuid():
        return "is not yours"
    if info.st_mode & 0o077:
        return f"is readable by others (mode {info.st_mode & 0o777:04o})"
    return None


def _private(path: Path):
    def accept(info: os.stat_result) -> None:
        why = not_a_secret(info)
        if why:
            raise KeyFileError(
                f"key file {path} {why}, and no cluster of the state uses it: skyplan adopts a key file it did "
                "not write only when it is yours alone (0600, one name), since a file from the repository, another "
                "user or another key is no secret of this cluster's. Delete it to have a new key generated, or "
                "give it a file of its own, 0600, if it is this cluster's key"
            )

    return accept


# A key file is one 44-character line; anything much larger is not one, and is not read whole.
FILE_LIMIT = _KEY_FILE_LIMIT = 4096


# Key-shaped text, in any case and with or without its '=': a key quoted lower-cased, or cut
# before its padding, is still a key. Over-masking some other base64 costs nothing.
_KEY_TEXT = re.compile(r"[A-Za-z0-9+/]{43}=|(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}(?![A-Za-z0-9+/])")


def redact(text: str) -> str:
    """`text` with anything shaped like a WireGuard key replaced: for messages that quote output
    of commands or lines of files skyplan did not write, such as `wg show dump` (which prints the
    private key) or a stray line in a config."""
    return _KEY_TEXT.sub("(key)", text)
