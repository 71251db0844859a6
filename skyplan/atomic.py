"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def ensure_dir(path: Path, mode: int = 0o755) -> None:
    """Create `path` (and parents) with `mode`; tighten an existing folder to `mode` if wider."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    current = path.stat().st_mode & 0o777
    if current & ~mode:
        path.chmod(mode)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write via a temporary file in the same folder, fsync, rename, then fsync the folder."""
    folder = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    sync_dir(folder)


def sync_dir(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk too.
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: Path) -> bool:
    """Remove `path` if it exists; say whether it did."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    sync_dir(path.parent)
    return True


def remove_leftovers(folder: Path, name: str = "*") -> None:
    """Remove temporary files that a killed writer left in `folder` (for `name`, or any).

    Callers hold the lock that serialises writers, so every temporary found is stale.
    """
    try:
        for leftover in folder.glob(f".{name}.*.tmp"):
            leftover.unlink(missing_ok=True)
    except FileNotFoundError:
        pass


def write_many(files: list[tuple[Path, bytes, int]], workers: int = 8) -> dict[Path, OSError]:
    """Write several files atomically, each as `write_atomic` does, and return the failures.

    fsync dominates the cost of many small files; it releases the GIL, so the files are staged
    and synced in parallel, then renamed, then each folder is synced once.
    """
    from concurrent.futures import ThreadPoolExecutor

    failures: dict[Path, OSError] = {}

    def stage(item: tuple[Path, bytes, int]) -> str | OSError:
        path, data, mode = item
        try:
            fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            return exc
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            os.unlink(temporary)
            return exc
        os.close(fd)
        return temporary

    with ThreadPoolExecutor(max_workers=workers) as pool:
        staged = list(pool.map(stage, files))
        folders = set()
        for (path, _, _), temporary in zip(files, staged):
            if isinstance(temporary, OSError):
                failures[path] = temporary
                continue
            try:
                os.replace(temporary, path)
                folders.add(path.parent)
            except OSError as exc:
                os.unlink(temporary)
                failures[path] = exc
        list(pool.map(sync_dir, folders))
    return failures
