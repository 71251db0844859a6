"""Small sealed records that skyplan keeps for itself in a workspace's .skyplan/cache.

Each is one file whose body carries a MAC made with this user's secret (skyplan/seal.py): one
planted in the workspace, copied from another or edited is not believed. A record that is
missing, damaged or cannot be written only costs the time it would have saved.
"""

from __future__ import annotations

from pathlib import Path

from skyplan import atomic, seal
from skyplan.errors import UnsafePathError

LIMIT = 4096  # every record is a digest or two: anything larger was not written by us


def recall(folder: Path, name: str, purpose: str, workspace: Path) -> bytes | None:
    """The body of the record `name` in `folder`, if it was sealed for `purpose` by this user."""
    try:
        # <workspace>/.skyplan/cache is reached from the workspace, no symlink followed.
        raw = atomic.read_bytes(folder / name, workspace, limit=LIMIT)
    except (OSError, UnsafePathError):
        return None
    if raw is None:
        return None
    return seal.unseal(purpose, raw, workspace)


def keep(folder: Path, name: str, purpose: str, body: bytes, workspace: Path) -> None:
    """Seal `body` for `purpose` into the record `name`; nothing if it cannot be sealed or written."""
    blob = seal.seal(purpose, body, workspace)
    if blob is None:
        return  # without a secret to seal it with, a record would never be believed
    try:
        atomic.ensure_dir(folder.parent, 0o700, workspace)  # .skyplan: never wider, whatever made it
        atomic.ensure_dir(folder, 0o700, workspace)
        # Written without the state lock (skyctl get takes none): a run killed meanwhile leaves
        # a temporary file, which the next command that takes the lock removes (tidy).
        atomic.write_atomic(folder / name, blob, 0o600, workspace)
    except (OSError, UnsafePathError):
        pass  # a record that cannot be written only costs time


def tidy(folder: Path, workspace: Path) -> None:
    """Remove the temporary files that runs killed while writing to `folder` left (a record's,
    or a cache entry's). Called under the state lock, which every writer there but `skyctl get`
    holds: a `get` writing its record meanwhile only fails to, which costs it nothing."""
    try:
        atomic.remove_leftovers(folder, within=workspace)
    except (OSError, UnsafePathError):
        pass
