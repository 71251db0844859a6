"""The local state store: .skyplan/state.json, its backup, and an OS lock with lock info."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import secrets
import stat
import time
from pathlib import Path

from pydantic import ValidationError

from skyplan import atomic
from skyplan.errors import LockError, StateError, UnsafePathError
from skyplan.state.codec import encode_state, parse_state
from skyplan.state.model import STATE_FORMAT_VERSION, State
from skyplan.state.store import LockInfo, StateStore, check_successor, lock_error

_HEAD = re.compile(rb'"version":\s*(\d+),\s*"serial":\s*(\d+),\s*"lineage":\s*"([^"]*)"')
_POLL_SECONDS = 0.05
_HEAD_BYTES = 4096  # version, serial and lineage lead every state skyplan writes


class FileStateStore(StateStore):
    """The state in `data_dir`, every file reached from `within` (the workspace) without
    following a symlink: a planted `.skyplan` link is refused, never written or chmod-ed through."""

    def __init__(self, data_dir: Path, within: Path | None = None):
        self.data_dir = data_dir
        self.within = data_dir.parent if within is None else within
        self.path = data_dir / "state.json"
        self.backup_path = data_dir / "state.json.backup"
        self.lock_path = data_dir / "state.json.lock"
        self._lock_fd: int | None = None
        self._lock_info: LockInfo | None = None
        self._backed_up = False

    def describe(self) -> str:
        return str(self.path)

    # -- read / write ----------------------------------------------------------------------------

    def read(self) -> State | None:
        try:
            raw = atomic.read_bytes(self.path, self.within)
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror}") from None
        self.read_digest = None
        if raw is None:
            return None
        state = parse_state(raw, str(self.path))
        self.read_digest = hashlib.sha256(raw).hexdigest()
        return state

    def write(self, state: State) -> None:
        try:
            self._write(state)
        except OSError as exc:
            raise StateError(f"cannot write state to {self.path}: {exc.strerror or exc} ({exc.filename or self.data_dir})") from None

    def _write(self, state: State) -> None:
        atomic.ensure_dir(self.data_dir, 0o700, self.within)
        previous = self._open_previous()
        if previous is not None:
            fd, info = previous
            try:
                match = _HEAD.search(os.pread(fd, _HEAD_BYTES, 0))
                if match and int(match.group(1)) <= STATE_FORMAT_VERSION:
                    serial, lineage = int(match.group(2)), match.group(3).decode()
                else:
                    serial, lineage = self._full_head()  # the whole document decides, and explains
                check_successor(serial, lineage, state, str(self.path))
                if not self._backed_up:
                    # One backup per run: the state as it was before this run changed anything.
                    self._back_up(fd, info)
                    self._backed_up = True
            finally:
                os.close(fd)
        atomic.write_atomic(self.path, encode_state(state), 0o600, self.within)

    def _open_previous(self) -> tuple[int, os.stat_result] | None:
        """The state file as it is, open, and its status; None if there is none. Only its head is
        read to check the serial: a large fleet's state is tens of megabytes, written several
        times per apply, and its backup is made without reading it (_back_up)."""
        try:
            # Not blocking on a FIFO planted there, nor taking it as a terminal: as atomic reads.
            fd = atomic.open_file(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY, 0o600, self.within)
        except FileNotFoundError:
            return None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(self.path))
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "Not a regular file", str(self.path))
        except BaseException:
            os.close(fd)
            raise
        return fd, info

    def _full_head(self) -> tuple[int, str]:
        raw = atomic.read_bytes(self.path, self.within)
        if raw is None:
            raise StateError(f"state file {self.path} was removed while it was being replaced")
        return _head(raw, str(self.path))

    def _back_up(self, fd: int, info: os.stat_result) -> None:
        """Keep the state file open as `fd` as the backup: the same file under the backup's name
        (a hard link, then renamed into place), as the rename of the new state leaves it there.
        Its content is durable first (an fsync of a file already synced costs nothing). A file
        that is not plainly ours alone (another link to it, another mode or owner) is copied."""
        if info.st_nlink != 1 or stat.S_IMODE(info.st_mode) != 0o600 or info.st_uid != os.geteuid():
            self._copy_backup(fd, info)
            return
        os.fsync(fd)
        with atomic.folder(self.data_dir, self.within) as parent:
            temporary = f".{self.path.name}.backup.{secrets.token_hex(4)}.tmp"
            try:
                os.link(self.path.name, temporary, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
            except OSError:  # a file system without hard links
                self._copy_backup(fd, info)
                return
            try:
                linked = os.stat(temporary, dir_fd=parent, follow_symlinks=False)
                if (linked.st_dev, linked.st_ino) != (info.st_dev, info.st_ino):
                    # Replaced since it was opened (not by skyplan, which holds the lock): copy what was read.
                    os.unlink(temporary, dir_fd=parent)
                    self._copy_backup(fd, info)
                    return
                found = _lstat(parent, self.backup_path.name)
                if found is not None and stat.S_ISLNK(found.st_mode):
                    raise UnsafePathError(str(self.backup_path))  # a planted link is reported, never taken over
                os.replace(temporary, self.backup_path.name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                _unlink_quietly(parent, temporary)
                raise
            os.fsync(parent)

    def _copy_backup(self, fd: int, info: os.stat_result) -> None:
        content = _read_all(fd, info.st_size)
        atomic.write_atomic(self.backup_path, content, 0o600, self.within)

    # -- lock ----------------------------------------------------------------------------------

    def lock(self, operation: str, timeout: float) -> LockInfo:
        try:
            atomic.ensure_dir(self.data_dir, 0o700, self.within)
            fd = atomic.open_file(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600, self.within)
        except OSError as exc:
            raise StateError(f"cannot lock the state in {self.data_dir}: {exc.strerror or exc}") from None
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder_of(fd)
                    # The holder writes its info just after taking the lock: give it a moment.
                    for _ in range(10):
                        if holder is not None:
                            break
                        time.sleep(_POLL_SECONDS)
                        holder = _holder_of(fd)
                    os.close(fd)
                    raise lock_error(str(self.path), holder, round(time.monotonic() - started, 1) if timeout else 0) from None
                time.sleep(_POLL_SECONDS)
        info = LockInfo.new(operation, str(self.path))
        try:
            atomic.remove_leftovers(self.data_dir, self.path.name, self.within)
            _write_lock_info(fd, info)
        except UnsafePathError:
            _release(fd)
            raise
        except OSError as exc:
            # A lock without its info would look anonymous to waiting runs (and a half-written
            # one would name nobody): give the lock back, with the file empty as when unlocked.
            _release(fd)
            raise StateError(
                f"cannot lock the state in {self.data_dir}: writing the lock info to {self.lock_path} failed "
                f"({exc.strerror or exc}); nothing was changed and no lock is held"
            ) from None
        self._lock_fd, self._lock_info = fd, info
        return info

    def unlock(self, lock_id: str) -> None:
        if self._lock_info is not None and self._lock_info.id == lock_id and self._lock_fd is not None:
            fd, self._lock_fd, self._lock_info = self._lock_fd, None, None
            _release(fd)
            return
        self._force_unlock(lock_id)

    def _force_unlock(self, lock_id: str) -> None:
        try:
            self._clear_dead_lock(lock_id)
        except OSError as exc:
            raise LockError(f"cannot unlock the state in {self.data_dir}: {exc.strerror or exc} ({self.lock_path})") from None

    def _clear_dead_lock(self, lock_id: str) -> None:
        holder = self._read_lock_info()
        if holder is None or holder.id != lock_id:
            current = f"; the current lock is {holder.id}" if holder else "; the state is not locked"
            raise LockError(f"no lock with ID {lock_id} on {self.path}{current}")
        try:
            fd = atomic.open_file(self.lock_path, os.O_RDWR, 0o600, self.within)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            # An OS lock belongs to a live process; it goes away when that process ends.
            raise LockError(
                f"lock {lock_id} is held by a running process ({holder.who}); stop that process "
                "and the lock is released with it"
            ) from None
        os.ftruncate(fd, 0)  # the holder died; only its lock info was left behind
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def close(self) -> None:
        if self._lock_info is not None:
            self.unlock(self._lock_info.id)

    def _read_lock_info(self) -> LockInfo | None:
        raw = atomic.read_bytes(self.lock_path, self.within)
        return None if raw is None else _parse_lock_info(raw)


def _write_lock_info(fd: int, info: LockInfo) -> None:
    data = info.model_dump_json().encode()
    os.ftruncate(fd, 0)
    written = 0
    while written < len(data):
        count = os.pwrite(fd, data[written:], written)
        if count == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written += count


def _release(fd: int) -> None:
    """Empty the lock file and let go of it; the file stays (removing it would race a waiter)."""
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass  # half-written info never parses: waiting runs see "holder unknown", no false name
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder_of(fd: int) -> LockInfo | None:
    """The lock info in the lock file open as `fd` (None when unreadable: "holder unknown")."""
    try:
        return _parse_lock_info(os.pread(fd, 65536, 0))
    except OSError:
        return None


def _parse_lock_info(raw: bytes) -> LockInfo | None:
    if not raw.strip():
        return None
    try:
        return LockInfo.model_validate_json(raw)
    except ValidationError:
        return None


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _unlink_quietly(parent: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        pass


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, max(size - offset, 1 << 20), offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _head(raw: bytes, where: str) -> tuple[int, str]:
    # The version, serial and lineage lead every state we write; reading them needs no full
    # parse. Any other version takes the full parse, which refuses a newer format.
    match = _HEAD.search(raw[:_HEAD_BYTES])
    if match and int(match.group(1)) <= STATE_FORMAT_VERSION:
        return int(match.group(2)), match.group(3).decode()
    state = parse_state(raw, where)
    return state.serial, state.lineage
