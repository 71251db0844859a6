"""Preshared keys of peerings, kept like private keys: `.skyplan/keys/<a>+<b>.psk`, 0600.

A peering's key is one file named after its two clusters in name order ('+' is not allowed in a
cluster name, so the name says which peering it is). It is generated once, when the peering first
wants one, and stays until the peering ends, stops wanting one or is rotated (`--replace` of a link
of it). The file is written before any config that holds the key, so a run killed in between
finds it and uses it again.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from skyplan.sdk import UnsafePathError, atomic, repository
from skyplan_wireguard import keys

Pair = frozenset  # frozenset({a, b}) of two cluster names

SUFFIX = ".psk"
# One 44-character line; anything much larger is not a key and is not read whole.
_FILE_LIMIT = 4096


class PresharedKeyError(ValueError):
    """A preshared key file exists but does not hold a key, or is not private to this user."""


def pair(a: str, b: str) -> Pair:
    return frozenset((a, b))


def file_name(peering: Pair) -> str:
    a, b = sorted(peering)
    return f"{a}+{b}{SUFFIX}"


def path(folder: Path, peering: Pair) -> Path:
    return folder / file_name(peering)


def generate() -> str:
    """A new key, as `wg genpsk` makes one: 32 random bytes in base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


# All zeros is what WireGuard uses when there is no preshared key (and conf.PSK_PLACEHOLDER).
_NO_KEY = base64.b64encode(bytes(32)).decode("ascii")


def is_key(text: str) -> bool:
    # Canonical only, as wg takes keys; all zeros is no key at all.
    return keys.is_canonical(text) and text != _NO_KEY


def read(file: Path, within: Path) -> str | None:
    """The key stored in `file`; None when there is none. The file must be private to this user
    (a key others can read, or one checked out from a repository, is no secret): PresharedKeyError
    otherwise, and when it holds no key. A symlink on the way is refused (UnsafePathError)."""
    try:
        raw = atomic.read_bytes(file, within, limit=_FILE_LIMIT, accept=_private(file))
    except OSError as exc:
        raise PresharedKeyError(f"preshared key file {file} cannot be read: {exc.strerror or exc}") from None
    if raw is None:
        return None
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""  # never quote the bytes: a file in the key's place may hold anything
    if not is_key(text):
        raise PresharedKeyError(f"preshared key file {file} does not hold a WireGuard preshared key")
    if repository.tracked(file):
        raise PresharedKeyError(
            f"preshared key file {file} is tracked by git: a key that a repository holds came from a commit, "
            "and whoever wrote that commit knows it. It is not used: remove it from the repository "
            "(git rm --cached) and delete it, to have a new one generated"
        )
    return text


def _private(file: Path):
    def accept(info: os.stat_result) -> None:
        why = keys.not_a_secret(info)
        if why:
            raise PresharedKeyError(
                f"preshared key file {file} {why}: a key that is not this peering's alone is no secret. If it is "
                "this peering's key, give it a file of its own, 0600; else delete it to have a new one generated"
            )

    return accept


def write(folder: Path, within: Path, found: Mapping[Pair, str]) -> dict[Pair, OSError]:
    """Write every key of `found` (0600, its folder 0700), each atomically; the ones that failed."""
    if not found:
        return {}
    atomic.ensure_dir(folder.parent, 0o700, within)
    atomic.ensure_dir(folder, 0o700, within)
    by_path = {path(folder, peering): peering for peering in found}
    errors = atomic.write_many(
        [(file, (found[peering] + "\n").encode("ascii"), 0o600) for file, peering in by_path.items()], within=within
    )
    return {by_path[file]: exc for file, exc in errors.items()}


def remove(folder: Path, within: Path, peerings: Iterable[Pair]) -> dict[Pair, OSError | UnsafePathError]:
    """Remove the files of `peerings` that exist; the ones that could not be removed."""
    errors: dict[Pair, OSError | UnsafePathError] = {}
    for peering in peerings:
        try:
            atomic.remove(path(folder, peering), within)
        except (OSError, UnsafePathError) as exc:
            errors[peering] = exc
    return errors


def rename(folder: Path, within: Path, old: Pair, new: Pair) -> None:
    """Move peering `old`'s key to `new` (its clusters were renamed). Done again after an
    interruption, it finds the key moved already and does nothing. PresharedKeyError when `new`
    holds another key already."""
    source, target = path(folder, old), path(folder, new)
    here = read(source, within)
    if here is None:
        return
    there = read(target, within)
    if there is None:
        atomic.rename(source, target, within)
    elif there == here:
        atomic.remove(source, within)
    else:
        raise PresharedKeyError(f"cannot move preshared key file {source.name} to {target.name}: that file holds another key")
