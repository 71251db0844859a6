"""Files under a trusted folder: atomic writes, and no symlink ever followed below that folder.

Every path is reached from an anchor the caller trusts (the workspace, or a folder links.yaml
names) one component at a time, through folder descriptors opened with O_NOFOLLOW. A symlink
planted anywhere below the anchor, in a folder as much as in the file itself, is refused with
UnsafePathError before anything is read, written, chmod-ed or deleted through it: a repository
cannot point skyplan at files outside it. Folders made on the way get exactly the mode asked
for, whatever the umask.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import secrets
import stat
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

from skyplan.errors import UnsafePathError

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted where a file should be must not hang the run in open().
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


# -- reaching a folder -----------------------------------------------------------------------------


def open_folder(path: Path, within: Path | None = None, create: int | None = None) -> int:
    """A descriptor of folder `path`, reached from `within` without following any symlink below it.

    `within` itself is trusted as it stands (None: `path` is). `create` is the mode of folders
    made on the way, applied exactly; without it a missing folder raises FileNotFoundError.
    """
    anchor, parts = _split(path, path if within is None else within)
    if create is not None:
        # A missing anchor is made too, from the nearest folder that exists.
        while not os.path.isdir(anchor) and anchor.parent != anchor:
            anchor, parts = anchor.parent, [anchor.name, *parts]
    fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    here = anchor
    for part in parts:
        here = here / part
        fd = _step(fd, part, here, create)  # closes the folder it started from, also on failure
    return fd


@contextmanager
def folder(path: Path, within: Path | None = None, create: int | None = None) -> Iterator[int]:
    fd = open_folder(path, within, create)
    try:
        yield fd
    finally:
        os.close(fd)


def _split(path: Path, within: Path) -> tuple[Path, list[str]]:
    # Lexically normalised: `a/../b` is walked as `b`, never through whatever `a` points to.
    full, anchor = Path(os.path.normpath(path)), Path(os.path.normpath(within))
    try:
        return anchor, list(full.relative_to(anchor).parts)
    except ValueError:
        raise ValueError(f"{path} is not under {within}") from None


def _step(parent: int, name: str, path: Path, create: int | None) -> int:
    """Open `name` in `parent` as a folder (making it if asked); close `parent` either way."""
    try:
        try:
            return os.open(name, _FOLDER, dir_fd=parent)
        except FileNotFoundError:
            if create is None:
                raise
        try:
            os.mkdir(name, create, dir_fd=parent)
        except FileExistsError:
            return os.open(name, _FOLDER, dir_fd=parent)  # made meanwhile: opened like any other
        fd = os.open(name, _FOLDER, dir_fd=parent)
        os.fchmod(fd, create)  # mkdir's mode passes through the umask, which may widen nothing but may narrow it
        return fd
    except OSError as exc:
        _refuse_symlink(parent, name, path, exc)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(parent)


def _refuse_symlink(parent: int, name: str, path: Path, exc: OSError | None = None) -> None:
    if exc is not None and exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
        return
    try:
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return
    if is_link:
        raise UnsafePathError(path)


def _leaf(fd: int, name: str, path: Path) -> os.stat_result | None:
    """What `name` is in folder `fd` (None if nothing); a symlink is refused."""
    try:
        found = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(found.st_mode):
        raise UnsafePathError(path)
    return found


def ensure_dir(path: Path, mode: int = 0o755, within: Path | None = None) -> None:
    """Make `path` (and missing parents) with `mode`; tighten an existing `path` to `mode` if wider."""
    with folder(path, within, create=mode) as fd:
        if os.fstat(fd).st_mode & 0o777 & ~mode:
            os.fchmod(fd, mode)  # on the descriptor: the folder checked, not whatever is there now


# -- files -------------------------------------------------------------------------------------------


def read_bytes(path: Path, within: Path | None = None, limit: int | None = None) -> bytes | None:
    """The content of regular file `path`, None if it (or a folder on the way) is missing."""
    try:
        parent = open_folder(path.parent, within if within is not None else path.parent)
    except FileNotFoundError:
        return None
    try:
        try:
            fd = os.open(path.name, _READ, dir_fd=parent)
        except FileNotFoundError:
            return None
        except OSError as exc:
            _refuse_symlink(parent, path.name, path, exc)
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    finally:
        os.close(parent)
    try:
        kind = os.fstat(fd).st_mode
        if stat.S_ISDIR(kind):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(kind):
            raise OSError(errno.EINVAL, "Not a regular file", str(path))
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                raise OSError(errno.EFBIG, f"Larger than {limit} bytes", str(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_file(path: Path, flags: int, mode: int = 0o600, within: Path | None = None) -> int:
    """os.open of `path` (O_NOFOLLOW added) in its folder reached from `within`; the caller closes it."""
    with folder(path.parent, within if within is not None else path.parent) as parent:
        try:
            return os.open(path.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        except OSError as exc:
            _refuse_symlink(parent, path.name, path, exc)
            raise OSError(exc.errno, exc.strerror, str(path)) from None


def write_atomic(path: Path, data: bytes, mode: int = 0o600, within: Path | None = None) -> None:
    """Write via a temporary file in the same folder, fsync, rename, then fsync the folder.

    Without `within`, the folder of `path` is trusted as it stands (a path the user named).
    """
    with folder(path.parent, within if within is not None else path.parent) as parent:
        temporary = _stage(parent, path, data, mode)
        _commit(parent, temporary, path)
        os.fsync(parent)


def _stage(parent: int, path: Path, data: bytes, mode: int) -> str:
    """Write `data` to a new temporary file beside `path`, synced; return its name."""
    while True:
        name = f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
            break
        except FileExistsError:
            continue
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name, dir_fd=parent)
        raise
    os.close(fd)
    return name


def _commit(parent: int, temporary: str, path: Path) -> None:
    try:
        # rename would replace a symlink rather than follow it; still refuse, so that a planted
        # link is reported, never silently taken over.
        _leaf(parent, path.name, path)
        os.replace(temporary, path.name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        os.unlink(temporary, dir_fd=parent)
        raise


def remove(path: Path, within: Path | None = None) -> bool:
    """Remove file `path` if it exists; say whether it did. A symlink there is refused, not removed."""
    try:
        parent = open_folder(path.parent, within if within is not None else path.parent)
    except FileNotFoundError:
        return False
    try:
        found = _leaf(parent, path.name, path)
        if found is None:
            return False
        if stat.S_ISDIR(found.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        try:
            os.unlink(path.name, dir_fd=parent)
        except FileNotFoundError:
            return False
        os.fsync(parent)
        return True
    finally:
        os.close(parent)


def remove_empty_dir(path: Path, within: Path | None = None) -> bool:
    """Remove folder `path` if it exists and is empty; say whether it did."""
    try:
        parent = open_folder(path.parent, within if within is not None else path.parent)
    except FileNotFoundError:
        return False
    try:
        found = _leaf(parent, path.name, path)
        if found is None or not stat.S_ISDIR(found.st_mode):
            return False
        try:
            os.rmdir(path.name, dir_fd=parent)
        except OSError:
            return False  # not empty: something else lives there; leave it
        os.fsync(parent)
        return True
    finally:
        os.close(parent)


def remove_leftovers(path: Path, name: str = "*", within: Path | None = None) -> None:
    """Remove temporary files that a killed writer left in folder `path` (for `name`, or any).

    Callers hold the lock that serialises writers, so every temporary found is stale.
    """
    try:
        parent = open_folder(path, within)
    except FileNotFoundError:
        return
    try:
        pattern = f".{name}.*.tmp"
        for entry in os.scandir(parent):
            if fnmatch.fnmatchcase(entry.name, pattern):
                try:
                    os.unlink(entry.name, dir_fd=parent)  # a link there is removed itself, never followed
                except (FileNotFoundError, IsADirectoryError, PermissionError):
                    pass
    finally:
        os.close(parent)


def write_many(
    files: list[tuple[Path, bytes, int]], workers: int = 8, within: Path | None = None
) -> dict[Path, OSError | UnsafePathError]:
    """Write several files atomically, each as `write_atomic` does, and return the failures.

    fsync dominates the cost of many small files; it releases the GIL, so the files are staged
    and synced in parallel, then renamed, then each folder is synced once.
    """
    from concurrent.futures import ThreadPoolExecutor

    failures: dict[Path, OSError | UnsafePathError] = {}
    folders: dict[Path, int] = {}
    unreachable: dict[Path, OSError | UnsafePathError] = {}  # folders that could not be opened
    try:
        for path, _, _ in files:
            if path.parent not in folders and path.parent not in unreachable:
                try:
                    folders[path.parent] = open_folder(path.parent, within if within is not None else path.parent)
                except (OSError, UnsafePathError) as exc:
                    unreachable[path.parent] = exc

        def stage(item: tuple[Path, bytes, int]) -> str | OSError | UnsafePathError:
            path, data, mode = item
            if path.parent in unreachable:
                return unreachable[path.parent]
            try:
                return _stage(folders[path.parent], path, data, mode)
            except OSError as exc:
                return OSError(exc.errno, exc.strerror, str(path))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            staged = list(pool.map(stage, files))
            touched = set()
            for (path, _, _), temporary in zip(files, staged):
                if not isinstance(temporary, str):
                    failures[path] = temporary
                    continue
                try:
                    _commit(folders[path.parent], temporary, path)
                    touched.add(folders[path.parent])
                except (OSError, UnsafePathError) as exc:
                    failures[path] = exc
            list(pool.map(os.fsync, touched))
    finally:
        for fd in folders.values():
            os.close(fd)
    return failures
