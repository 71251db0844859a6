"""Files under a trusted folder: atomic writes, and no symlink ever followed below that folder.

Every path is reached from an anchor the caller trusts (the workspace, or a folder links.yaml
names) one component at a time, through folder descriptors opened with O_NOFOLLOW. A symlink
planted anywhere below the anchor, in a folder as much as in the file itself, is refused with
UnsafePathError before anything is read, written, chmod-ed or deleted through it: a repository
cannot point skyplan at files outside it. Folders made on the way get exactly the mode asked
for, whatever the umask.

Without `within`, a file's own folder is the anchor: for paths the user named on the command
line (`plan --out`, `fmt`), which are trusted as they stand.
"""

from __future__ import annotations

import errno
import fnmatch
import itertools
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from skyplan.errors import UnsafePathError

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted where a file should be must not hang the run in open(); O_NOCTTY:
# a terminal device there must not become the run's controlling terminal.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

# Paths are handled as strings inside: a plan reads back thousands of files, and pathlib's
# object churn would cost more than the system calls.


# -- reaching a folder -----------------------------------------------------------------------------


def open_folder(path: os.PathLike | str, within: os.PathLike | str | None = None, create: int | None = None) -> int:
    """A descriptor of folder `path`, reached from `within` without following any symlink below it.

    `within` itself is trusted as it stands (None: `path` is). `create` is the mode of folders
    made on the way, applied exactly; without it a missing folder raises FileNotFoundError.
    """
    anchor, parts = _split(os.fspath(path), os.fspath(path if within is None else within))
    if create is not None:
        # A missing anchor is made too, from the nearest folder that exists.
        while not os.path.isdir(anchor) and os.path.dirname(anchor) != anchor:
            anchor, name = os.path.split(anchor)
            parts.insert(0, name)
    fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for i, part in enumerate(parts):
        try:
            fd = _step(fd, part, create)  # closes the folder it started from, also on failure
        except _Refused as refused:
            shown = os.path.join(anchor, *parts[: i + 1])
            if refused.symlink:
                raise UnsafePathError(shown) from None
            raise OSError(refused.errno, refused.strerror, shown) from None
    return fd


@contextmanager
def folder(path: os.PathLike | str, within: os.PathLike | str | None = None, create: int | None = None) -> Iterator[int]:
    fd = open_folder(path, within, create)
    try:
        yield fd
    finally:
        os.close(fd)


def _split(path: str, within: str) -> tuple[str, list[str]]:
    # Lexically normalised: `a/../b` is walked as `b`, never through whatever `a` points to.
    full, anchor = os.path.normpath(path), os.path.normpath(within)
    if full == anchor:
        return anchor, []
    prefix = anchor if anchor.endswith("/") else anchor + "/"
    if not full.startswith(prefix):
        raise UnsafePathError(full, outside=anchor)  # a name that climbs out with '..'; never reached
    return anchor, full[len(prefix):].split("/")


class _Refused(Exception):
    def __init__(self, exc: OSError, symlink: bool):
        self.errno, self.strerror, self.symlink = exc.errno, exc.strerror, symlink


def _step(parent: int, name: str, create: int | None, keep_parent: bool = False) -> int:
    """Open `name` in `parent` as a folder (making it if asked); close `parent` either way,
    unless `keep_parent` (a folder kept open for many reads, see `kept_folders`)."""
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
        os.fchmod(fd, create)  # mkdir's mode went through the umask
        return fd
    except OSError as exc:
        raise _Refused(exc, _is_symlink(parent, name, exc)) from None
    finally:
        if not keep_parent:
            os.close(parent)


def _is_symlink(parent: int, name: str, exc: OSError | None = None) -> bool:
    if exc is not None and exc.errno not in (errno.ELOOP, errno.ENOTDIR):
        return False
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _leaf(parent: int, name: str, path: str) -> os.stat_result | None:
    """What `name` is in folder `parent` (None if nothing); a symlink is refused."""
    try:
        found = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(found.st_mode):
        raise UnsafePathError(path)
    return found


def _parent_of(path: os.PathLike | str, within: os.PathLike | str | None) -> tuple[str, str, os.PathLike | str]:
    """(the path as a string, its name, the anchor its folder is reached from)."""
    text = os.fspath(path)
    head, name = os.path.split(text)
    return text, name, head if within is None else within


class _KeptFolders:
    """Folder descriptors reached once and reused by every `read_bytes` of a `kept_folders` block."""

    LIMIT = 256  # descriptors kept at most: a folder per cluster would run into the process's limit

    def __init__(self) -> None:
        self._fds: dict[tuple[str, str], int] = {}
        self._held: set[int] = set()

    def holds(self, fd: int) -> bool:
        return fd in self._held

    def reach(self, head: str, anchor: str) -> int:
        """Folder `head` below `anchor`, from the nearest folder kept on the way; the folders
        walked through are kept too, while there is room."""
        anchor, parts = _split(head, anchor)
        done = len(parts)
        while done and (anchor, "/".join(parts[:done])) not in self._fds:
            done -= 1
        fd = self._fds.get((anchor, "/".join(parts[:done])))
        if fd is None:
            fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._keep(anchor, "", fd)
        for i in range(done, len(parts)):
            kept = self.holds(fd)
            try:
                fd = _step(fd, parts[i], None, keep_parent=kept)
            except _Refused as refused:
                shown = os.path.join(anchor, *parts[: i + 1])
                if refused.symlink:
                    raise UnsafePathError(shown) from None
                raise OSError(refused.errno, refused.strerror, shown) from None
            self._keep(anchor, "/".join(parts[: i + 1]), fd)
        return fd

    def _keep(self, anchor: str, relative: str, fd: int) -> None:
        if len(self._fds) < self.LIMIT:
            self._fds[(anchor, relative)] = fd
            self._held.add(fd)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._held.clear()


class _Kept(threading.local):
    """The kept folders of this thread's open `kept_folders` blocks (others keep their own)."""

    def __init__(self) -> None:
        self.blocks: list[_KeptFolders] = []


_KEPT = _Kept()


@contextmanager
def kept_folders() -> Iterator[None]:
    """Within this block, `read_bytes` keeps the folders it reaches open and starts from them.

    A refresh reads a key and a config of each of thousands of clusters from a few folders;
    walking to each folder again, one component at a time, was most of its system calls. A kept
    folder is the one reached, without symlinks, when it was first needed: one renamed or
    replaced meanwhile is not followed to its new place, which is what one read does too.
    """
    kept = _KeptFolders()
    _KEPT.blocks.append(kept)
    try:
        yield
    finally:
        _KEPT.blocks.remove(kept)
        kept.close()


def ensure_dir(path: os.PathLike | str, mode: int = 0o755, within: os.PathLike | str | None = None) -> None:
    """Make `path` (and missing parents) with `mode`; tighten an existing `path` to `mode` if wider."""
    with folder(path, within, create=mode) as fd:
        if os.fstat(fd).st_mode & 0o777 & ~mode:
            os.fchmod(fd, mode)  # on the descriptor: the folder checked, not whatever is there now


# -- files -------------------------------------------------------------------------------------------


def read_bytes(
    path: os.PathLike | str,
    within: os.PathLike | str | None = None,
    limit: int | None = None,
    accept: Callable[[os.stat_result], None] | None = None,
) -> bytes | None:
    """The content of regular file `path`, None if it (or a folder on the way) is missing.

    `accept` sees the opened file's status before anything is read, and may raise to refuse it.
    """
    text, name, anchor = _parent_of(path, within)
    blocks = _KEPT.blocks
    kept = blocks[-1] if blocks else None
    try:
        parent = open_folder(os.path.dirname(text), anchor) if kept is None else kept.reach(os.path.dirname(text), os.fspath(anchor))
    except FileNotFoundError:
        return None
    try:
        return read_at(parent, name, text, limit, accept)
    finally:
        if kept is None or not kept.holds(parent):
            os.close(parent)


def read_at(
    parent: int,
    name: str,
    shown: str,
    limit: int | None = None,
    accept: Callable[[os.stat_result], None] | None = None,
) -> bytes | None:
    """`read_bytes` of file `name` in the open folder `parent` (which stays open); `shown` is the
    path errors name. A caller that reads many files of one folder opens the folder once."""
    if "/" in name:
        raise UnsafePathError(shown)  # one name in this folder, never a way elsewhere
    try:
        fd = os.open(name, _READ, dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if _is_symlink(parent, name, exc):
            raise UnsafePathError(shown) from None
        raise OSError(exc.errno, exc.strerror, shown) from None
    try:
        info = os.fstat(fd)
        kind = info.st_mode
        if stat.S_ISDIR(kind):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), shown)
        if not stat.S_ISREG(kind):
            raise OSError(errno.EINVAL, "Not a regular file", shown)
        if accept is not None:
            accept(info)
        chunks = []
        size = 0
        if info.st_size and (limit is None or info.st_size <= limit):
            # Most files are read whole by the first read, and no second one is needed to see
            # the end: a refresh reads two files of every cluster.
            first = os.read(fd, info.st_size)
            if len(first) == info.st_size:
                return first  # what the file held when opened; skyplan replaces files, never edits them
            chunks.append(first)
            size = len(first)
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                raise OSError(errno.EFBIG, f"Larger than {limit} bytes", shown)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_below(
    parent: int, folder_name: str, name: str, shown: str, limit: int | None = None
) -> bytes | None:
    """`read_at` of `folder_name/name` below the open folder `parent` (which stays open): the
    folder is opened without following a symlink, and closed again."""
    if "/" in folder_name or folder_name in ("", ".", ".."):
        raise UnsafePathError(shown)
    try:
        fd = _step(parent, folder_name, None, keep_parent=True)
    except _Refused as refused:
        if refused.errno == errno.ENOENT:
            return None
        if refused.symlink:
            raise UnsafePathError(os.path.dirname(shown)) from None
        raise OSError(refused.errno, refused.strerror, os.path.dirname(shown)) from None
    try:
        return read_at(fd, name, shown, limit)
    finally:
        os.close(fd)


def open_file(path: os.PathLike | str, flags: int, mode: int = 0o600, within: os.PathLike | str | None = None) -> int:
    """os.open of `path` (O_NOFOLLOW added) in its folder reached from `within`; the caller closes it."""
    text, name, anchor = _parent_of(path, within)
    with folder(os.path.dirname(text), anchor) as parent:
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        except OSError as exc:
            if _is_symlink(parent, name, exc):
                raise UnsafePathError(text) from None
            raise OSError(exc.errno, exc.strerror, text) from None


def write_atomic(path: os.PathLike | str, data: bytes, mode: int = 0o600, within: os.PathLike | str | None = None) -> None:
    """Write via a temporary file in the same folder, fsync, rename, then fsync the folder."""
    text, name, anchor = _parent_of(path, within)
    with folder(os.path.dirname(text), anchor) as parent:
        temporary = _stage(parent, name, data, mode)
        _commit(parent, temporary, name, text)
        os.fsync(parent)


def write_new(path: os.PathLike | str, data: bytes, mode: int = 0o600, within: os.PathLike | str | None = None) -> None:
    """Write a file that must not exist yet, atomically: staged, synced, then linked into place,
    which fails (FileExistsError) rather than replace anything, even one created meanwhile."""
    text, name, anchor = _parent_of(path, within)
    with folder(os.path.dirname(text), anchor) as parent:
        temporary = _stage(parent, name, data, mode)
        try:
            os.link(temporary, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), text) from None
        finally:
            os.unlink(temporary, dir_fd=parent)
        os.fsync(parent)


def _stage(parent: int, name: str, data: bytes, mode: int, sync: bool = True, tag: str | None = None, exact: bool = False) -> str:
    """Write `data` to a new temporary file beside `name`, synced unless the caller syncs the
    whole file system later (`sync=False`); return the temporary's name.

    `tag` makes the temporary's name (`.name.TAG.tmp`) instead of random bytes; `exact` says
    the umask leaves `mode` as it is, so that the file is made with it and needs no fchmod."""
    temporary = f".{name}.{tag}.tmp" if tag is not None else None
    while True:
        if temporary is None:
            temporary = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode if exact else 0o600, dir_fd=parent)
            break
        except FileExistsError:
            temporary = None
    try:
        if not exact:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary, dir_fd=parent)
        raise
    os.close(fd)
    return temporary


def _commit(parent: int, temporary: str, name: str, shown: str) -> None:
    try:
        # A rename would replace a symlink rather than follow it; still refuse, so that a
        # planted link is reported, never silently taken over.
        _leaf(parent, name, shown)
        os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        os.unlink(temporary, dir_fd=parent)
        raise


def write_many(
    files: list[tuple[Path, bytes, int]], workers: int = 8, within: os.PathLike | str | None = None
) -> dict[Path, OSError | UnsafePathError]:
    """Write several files atomically, each as `write_atomic` does, and return the failures."""
    with Batch(within, workers) as batch:
        for path, data, mode in files:
            batch.add(path, data, mode)
        return batch.commit()


class Batch:
    """Many files written atomically, each as `write_atomic` does, staged while more are added.

    The system calls of many small files (create, write, fsync) dominate their cost and release
    the GIL, so a pool of threads stages the files as they are added (a few at a time), while
    the caller renders the next ones. With `workers=0` the caller stages them itself, a few at a
    time as they are added: a pool's threads wait for the GIL after each system call while the
    caller keeps the processor busy, longer than the calls take (the apply's own batches).
    `commit` waits for the staging, makes the data durable, renames every staged file into place
    in the order added, then makes the renames durable: no file is in place before its data is
    on disk, and a file that could not be staged leaves what was there as it was.

    Durable means fsync of each file and folder for a few files, and for many (SYNCFS_FROM) one
    syncfs(2) of the file system before the renames and one after: two system calls instead of
    thousands, at the price of also flushing whatever else is waiting to be written there.
    Batches committed one after the other share a sync: the one after the first batch's renames
    also makes the data of a second batch staged before it durable (`commit(synced=...)`).

    `add(..., folder_mode=M)` also makes the file's folder with mode M when missing, tightens it
    to M when wider, and removes temporaries a killed writer left in it (the caller holds the
    lock that serialises writers): one walk to the folder, in the pool, not three in the caller.
    Folders sharing a parent (one per cluster) are made in it from one descriptor of it; one
    just made needs neither (it is empty, and has its mode unless the umask took bits away).
    """

    def __init__(self, within: os.PathLike | str | None = None, workers: int = 4) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._within = within
        # No workers: each file is staged as it is added, by the caller (see `add`).
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers else None
        self._lock = threading.Lock()
        self._folders: dict[tuple, tuple[threading.Lock, list]] = {}  # (head,) or (head, "parent") -> (its lock, [fd or error])
        self._jobs: list[tuple[list[Path], object]] = []  # the files of each job given to the pool, and its future
        # Files were handed over to be staged since the last commit: some temporary may exist,
        # also when staging itself was interrupted (a Ctrl-C while this thread stages a chunk).
        self._handed = False
        self._waiting: list[tuple[Path, bytes, int, int | None]] = []  # added, not given to the pool yet
        self._mask: int | None = None
        self.synced: frozenset[int] = frozenset()  # see commit
        self._tag = secrets.token_hex(4)
        self._count = itertools.count()

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, path: Path, data: bytes, mode: int, folder_mode: int | None = None) -> None:
        # Files go to the pool a few at a time: a job per file cost more in handing it over
        # (a future, a wake-up, the GIL going back and forth) than staging it.
        self._waiting.append((path, data, mode, folder_mode))
        if len(self._waiting) >= self.CHUNK:
            self._hand_over()

    CHUNK = 8

    def _hand_over(self) -> None:
        if self._waiting:
            chunk, self._waiting = self._waiting, []
            self._handed = True  # before staging: an interrupted chunk is no job, yet has temporaries
            if self._pool is None:
                self._jobs.append(([item[0] for item in chunk], _Done(self._stage_all(chunk))))
            else:
                self._jobs.append(([item[0] for item in chunk], self._pool.submit(self._stage_all, chunk)))

    def _stage_all(self, chunk: list[tuple[Path, bytes, int, int | None]]) -> list[str | OSError | UnsafePathError]:
        return [self._stage(*item) for item in chunk]

    def _reached(self, key: tuple, reach: Callable[[], int]) -> int:
        """The folder descriptor `reach()` gives, reached once per `key` however many files ask;
        an error reaching it is raised to each of them."""
        with self._lock:
            entry = self._folders.get(key)
            if entry is None:
                entry = self._folders[key] = (threading.Lock(), [])
        lock, found = entry
        with lock:  # the first file of a folder reaches it; the others wait for that
            if not found:
                try:
                    found.append(reach())
                except (OSError, UnsafePathError) as exc:
                    found.append(exc)
        if isinstance(found[0], BaseException):
            raise found[0]
        return found[0]

    def _folder(self, head: str, anchor: os.PathLike | str, folder_mode: int | None) -> int:
        anchor = os.fspath(anchor)
        if folder_mode is None:
            return self._reached((head,), lambda: open_folder(head, anchor))
        _, parts = _split(head, anchor)
        if not parts:
            return self._reached((head,), lambda: self._tightened(open_folder(head, anchor, create=folder_mode), folder_mode))
        # The folders of many files share their parent (a folder per cluster in the output
        # folder): it is reached once, and each folder made or opened in it.
        up = os.path.dirname(head)
        parent = self._reached((up, "parent"), lambda: open_folder(up, anchor, create=folder_mode))
        return self._reached((head,), lambda: self._made_or_tightened(parent, parts[-1], head, folder_mode))

    def _made_or_tightened(self, parent: int, name: str, shown: str, mode: int) -> int:
        """Folder `name` in `parent`: made with `mode` when missing; else tightened to it and
        cleared of the temporaries a killed writer left. A symlink there is refused."""
        try:
            os.mkdir(name, mode, dir_fd=parent)
            made = True
        except OSError as exc:
            made, refused = False, exc
        try:
            fd = os.open(name, _FOLDER, dir_fd=parent)
        except OSError as exc:
            if _is_symlink(parent, name, exc):
                raise UnsafePathError(shown) from None
            if isinstance(exc, FileNotFoundError) and not made and not isinstance(refused, FileExistsError):
                exc = refused  # could not be made: that says why
            raise OSError(exc.errno, exc.strerror, shown) from None
        if made:
            # Just made, so empty and ours; its mode is exact unless the umask took bits away.
            if mode & self._umask():
                os.fchmod(fd, mode)
            return fd
        return self._tightened(fd, mode)

    @staticmethod
    def _tightened(fd: int, mode: int) -> int:
        try:
            if os.fstat(fd).st_mode & 0o777 & ~mode:
                os.fchmod(fd, mode)  # on the descriptor: the folder checked, not whatever is there now
            _remove_temporaries(fd, "*")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _umask(self) -> int:
        """The process's umask (all bits when it cannot be read: then every mode is set anew)."""
        if self._mask is None:
            self._mask = _current_umask()
        return self._mask

    def _stage(self, path: Path, data: bytes, mode: int, folder_mode: int | None) -> str | OSError | UnsafePathError:
        text, name, anchor = _parent_of(path, self._within)
        try:
            parent = self._folder(os.path.dirname(text), anchor, folder_mode)
        except (OSError, UnsafePathError) as exc:
            return exc
        try:
            # A tag of this batch's own and a count: no random bytes asked of the system per file.
            return _stage(parent, name, data, mode, sync=False, tag=f"{self._tag}{next(self._count):x}", exact=not mode & self._umask())
        except OSError as exc:
            return OSError(exc.errno, exc.strerror, text)

    def finish_staging(self) -> None:
        """Stage every file added so far, and wait until each is (or failed to be): from here on,
        a whole-file-system sync covers all of their data (see `commit`'s `synced`)."""
        self._hand_over()
        for _, job in self._jobs:
            job.result()  # type: ignore[attr-defined]

    def commit(self, synced: frozenset[int] = frozenset()) -> dict[Path, OSError | UnsafePathError]:
        """Put every staged file in place; return the files that could not be written, and why.

        `synced`: file systems (st_dev) on which a whole-file-system sync that began after this
        batch's `finish_staging` returned has succeeded, such as another batch's `synced` after
        its commit: the data there is durable already and is not synced again before the
        renames. Afterwards `synced` is this batch's own: the file systems whose sync after its
        renames succeeded, where everything written before that is durable.
        """
        failures: dict[Path, OSError | UnsafePathError] = {}
        staged: list[tuple[Path, int, str, str]] = []  # path, its folder, the temporary's name, the file's
        self.synced = frozenset()
        self._hand_over()
        for paths, job in self._jobs:
            for path, temporary in zip(paths, job.result()):  # type: ignore[attr-defined]
                if isinstance(temporary, str):
                    head, name = os.path.split(os.fspath(path))
                    staged.append((path, self._folders[(head,)][1][0], temporary, name))
                else:
                    failures[path] = temporary
        # Each file system once (an output_dir may be a mount of its own), or each file.
        devices = _devices({parent for _, parent, _, _ in staged}) if len(staged) >= SYNCFS_FROM else {}
        whole = {device for device, fd in _one_folder_each(devices).items() if device in synced or _syncfs(fd)}
        alone = [item for item in staged if devices.get(item[1]) not in whole]
        for (path, _, _, _), error in zip(alone, self._map(_sync_staged, alone)):
            if error is not None:
                failures[path] = error
        touched = set()
        for path, parent, temporary, name in staged:
            if path in failures:
                _unlink_quietly(parent, temporary)
                continue
            try:
                _commit(parent, temporary, name, os.fspath(path))
                touched.add(parent)
            except (OSError, UnsafePathError) as exc:
                failures[path] = exc
        self._jobs = []
        self._handed = False
        touched_devices = {fd: devices[fd] for fd in touched if devices.get(fd) in whole}
        synced_again = {device for device, fd in _one_folder_each(touched_devices).items() if _syncfs(fd)}
        list(self._map(os.fsync, [fd for fd in touched if devices.get(fd) not in synced_again]))
        self.synced = frozenset(synced_again)
        return failures

    def _map(self, function: Callable, items: list) -> Iterator:
        return map(function, items) if self._pool is None else self._pool.map(function, items)

    def close(self) -> None:
        """Wait for the pool, close every folder; files staged and never committed are removed."""
        self._waiting = []
        uncommitted = self._handed
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for key, (_, found) in self._folders.items():
            if found and isinstance(found[0], int):
                if uncommitted and len(key) == 1:  # a file's folder, not one a folder was made in
                    _remove_temporaries(found[0], "*")
                os.close(found[0])
        self._folders.clear()


class _Done:
    """The outcome of a job done at once, shaped as the pool's future of it."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value

    def result(self) -> object:
        return self._value


def _current_umask() -> int:
    # os.umask can only be read by setting it, which would race other threads' file creation:
    # Linux shows it in /proc instead. Unknown: every bit, so that each mode is set by fchmod.
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777


SYNCFS_FROM = 16  # files in one batch from which one syncfs is cheaper than a fsync each


def _devices(folders: set[int]) -> dict[int, int]:
    """The file system (st_dev) of each folder descriptor."""
    return {fd: os.fstat(fd).st_dev for fd in folders}


def _one_folder_each(devices: dict[int, int]) -> dict[int, int]:
    """One folder descriptor per file system: st_dev -> fd."""
    return {device: fd for fd, device in sorted(devices.items())}


def _syncfs(fd: int) -> bool:
    """syncfs(2) of the file system holding `fd`; False when it is not there or fails (then the
    caller syncs file by file, which reports the error where it belongs)."""
    call = _syncfs_call()
    return call is not None and call(fd) == 0


@lru_cache(maxsize=1)
def _syncfs_call():
    # Python has no os.syncfs; glibc has had it since 2.14. Before Linux 5.8 syncfs returns 0
    # even when writing some data back failed, which a fsync would report: not used there.
    if _kernel_version() < (5, 8):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


def _kernel_version() -> tuple[int, int]:
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return (0, 0)
    found = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def _sync_staged(item: tuple[Path, int, str, str]) -> OSError | None:
    path, parent, temporary, _ = item
    try:
        # O_NONBLOCK: a FIFO swapped in for the temporary must not hang the run; fsync refuses it.
        fd = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=parent)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return OSError(exc.errno, exc.strerror, os.fspath(path))
    return None


def _unlink_quietly(parent: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except OSError:
        pass


# -- deleting ----------------------------------------------------------------------------------------


def remove(path: os.PathLike | str, within: os.PathLike | str | None = None) -> bool:
    """Remove file `path` if it exists; say whether it did. A symlink there is refused, not removed."""
    text, name, anchor = _parent_of(path, within)
    try:
        parent = open_folder(os.path.dirname(text), anchor)
    except FileNotFoundError:
        return False
    try:
        found = _leaf(parent, name, text)
        if found is None:
            return False
        if stat.S_ISDIR(found.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), text)
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            return False
        os.fsync(parent)
        return True
    finally:
        os.close(parent)


def rename(source: os.PathLike | str, target: os.PathLike | str, within: os.PathLike | str | None = None) -> None:
    """Rename file `source` to `target` in the same folder, atomically; a symlink at either is refused."""
    text, name, anchor = _parent_of(source, within)
    target_text, target_name, _ = _parent_of(target, within)
    if os.path.dirname(text) != os.path.dirname(target_text):
        raise ValueError("atomic.rename renames within one folder")
    parent = open_folder(os.path.dirname(text), anchor)
    try:
        if _leaf(parent, name, text) is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), text)
        _leaf(parent, target_name, target_text)  # refuses a symlink planted at the new name
        os.rename(name, target_name, src_dir_fd=parent, dst_dir_fd=parent)
        os.fsync(parent)
    finally:
        os.close(parent)


def remove_empty_dir(path: os.PathLike | str, within: os.PathLike | str | None = None) -> bool:
    """Remove folder `path` if it exists and is empty; say whether it did."""
    text, name, anchor = _parent_of(path, within)
    try:
        parent = open_folder(os.path.dirname(text), anchor)
    except FileNotFoundError:
        return False
    try:
        found = _leaf(parent, name, text)
        if found is None or not stat.S_ISDIR(found.st_mode):
            return False
        try:
            os.rmdir(name, dir_fd=parent)
        except OSError:
            return False  # not empty: something else lives there; leave it
        os.fsync(parent)
        return True
    finally:
        os.close(parent)


def remove_leftovers(path: os.PathLike | str, name: str = "*", within: os.PathLike | str | None = None) -> None:
    """Remove temporary files that a killed writer left in folder `path` (for `name`, or any).

    Callers hold the lock that serialises writers, so every temporary found is stale.
    """
    try:
        parent = open_folder(path, within)
    except FileNotFoundError:
        return
    try:
        _remove_temporaries(parent, name)
    finally:
        os.close(parent)


def _remove_temporaries(parent: int, name: str) -> None:
    pattern = f".{name}.*.tmp"
    for entry in os.scandir(parent):
        if fnmatch.fnmatchcase(entry.name, pattern):
            try:
                os.unlink(entry.name, dir_fd=parent)  # a link there is removed itself, never followed
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                pass
