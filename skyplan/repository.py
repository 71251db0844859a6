"""Whether git tracks a file: a secret that a repository holds came from a commit.

Key files are trusted only when they are private to this user, but a pull request checked out
under umask 077 gives its files exactly that mode: a key file it adds (or changes) would pass as
one skyplan wrote, and its author would know the key. Git knows better: a file that it tracks
came from a commit, so a key file that git tracks is refused, whatever its mode.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

# What a walk up from a key folder may cross before it gives up looking for a repository.
_MOST_LEVELS = 64


def tracked(path: Path) -> bool:
    """Whether the git repository that holds `path`, if any, tracks it."""
    folder = os.path.dirname(os.path.abspath(path))
    if _repository_of(folder) is None:
        return False  # no repository, no pull request: no git to ask (the common, free case)
    return os.path.basename(path) in _tracked_in(folder)


def holding(path: Path, workspace: Path) -> Path | None:
    """The workspace, or the git checkout that holds it, when `path` is it or lies in it
    (symlinks resolved): what is there may have come from a pull request. None otherwise."""
    resolved, top = _resolved(path), _resolved(workspace)
    checkout = next((c for c in (top, *top.parents) if os.path.lexists(c / ".git")), None)
    for container in (top, checkout):
        if container is not None and (resolved == container or container in resolved.parents):
            return container
    return None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def tracked_names(folder: str) -> frozenset[str]:
    """The names of the files directly in `folder` that git tracks (none outside a repository):
    `tracked` for every file of one folder at once."""
    folder = os.path.abspath(folder)
    return frozenset() if _repository_of(folder) is None else _tracked_in(folder)


@lru_cache(maxsize=64)
def _repository_of(folder: str) -> str | None:
    here = folder
    for _ in range(_MOST_LEVELS):
        if os.path.lexists(os.path.join(here, ".git")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
    return None


@lru_cache(maxsize=64)
def _tracked_in(folder: str) -> frozenset[str]:
    """Names of the files directly in `folder` that git tracks; asked once per folder and run
    (a run does not commit, so the answer holds for the run)."""
    # The repository is found from the folder, not from variables of this environment, and
    # none of its hooks or filesystem monitors may run for this question.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        done = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "-C", folder, "ls-files", "-z", "--", "."],
            capture_output=True,
            env=environment,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()  # no git here: nothing was checked out with it either
    if done.returncode != 0:
        return frozenset()  # not a work tree (a bare .git, one git refuses to read as not ours)
    names = done.stdout.decode("utf-8", errors="surrogateescape").split("\0")
    return frozenset(name for name in names if name and "/" not in name)
