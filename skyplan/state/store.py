"""The interface every state store implements, and the lock information they share."""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from abc import ABC, abstractmethod

from skyplan import __version__
from skyplan.errors import LockError, StateError
from skyplan.state.model import Record, State, now_iso


class LockInfo(Record):
    id: str
    operation: str
    who: str
    created: str
    version: str = __version__
    path: str = ""

    @classmethod
    def new(cls, operation: str, path: str = "") -> LockInfo:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        who = f"{user}@{socket.gethostname()} (pid {os.getpid()})"
        return cls(id=str(uuid.uuid4()), operation=operation, who=who, created=now_iso(), path=path)

    def describe(self) -> str:
        return f"ID {self.id}, operation {self.operation}, by {self.who}, since {self.created}"


class StateStore(ABC):
    """read / write / lock / unlock. Writes are refused if they would go back in serial or
    cross lineage; a lock held by a dead process never blocks anyone."""

    # sha256 of the document the last `read` parsed, exactly as stored; None if nothing was read
    # (or a store cannot tell). What a sealed record of passed checks names (state/checked.py).
    read_digest: str | None = None

    @abstractmethod
    def describe(self) -> str:
        """Where the state lives, for messages."""

    @abstractmethod
    def read(self) -> State | None:
        """The current state, or None if there is none yet."""

    @abstractmethod
    def write(self, state: State) -> None:
        """Persist `state` atomically; its serial must be above the stored one, lineage equal."""

    @abstractmethod
    def lock(self, operation: str, timeout: float) -> LockInfo:
        """Take the lock, waiting up to `timeout` seconds; LockError naming the holder if not."""

    @abstractmethod
    def unlock(self, lock_id: str) -> None:
        """Release the lock `lock_id`: one's own, or (force-unlock) one left behind by another run."""

    def close(self) -> None:
        """Release connections and OS handles."""


def check_successor(current_serial: int | None, current_lineage: str | None, new: State, where: str) -> None:
    """Refuse a write that goes back in serial or belongs to another state."""
    if current_lineage is not None and current_lineage != new.lineage:
        raise StateError(
            f"refusing to write state to {where}: it belongs to lineage {current_lineage}, "
            f"this state to {new.lineage}"
        )
    if current_serial is not None and new.serial <= current_serial:
        raise StateError(
            f"refusing to write state serial {new.serial} to {where}: serial {current_serial} is already "
            "there (someone else changed the state since it was read)"
        )


def lock_error(store: str, holder: LockInfo | None, waited: float) -> LockError:
    held = holder.describe() if holder else "holder unknown"
    waited_text = f" after waiting {waited:g}s" if waited else ""
    return LockError(
        f"the state at {store} is locked{waited_text}: {held}. Wait for that run to finish or use "
        "--lock-timeout; if it is gone for good, run: skyplan force-unlock "
        + (holder.id if holder else "ID")
    )
