"""The sealed record of the last refresh that found no drift, for the provider's ReadMemo.

A refresh reads every file a provider keeps and compares each with what the state says it
should hold; for WireGuard that is deriving every cluster's public key and rendering every
config again, the larger part of a plan that changes nothing. What a refresh finds depends only
on the world it is given (the state, byte for byte, with the code that upgrades and reads it,
the provider's settings and the workspace: the key state/checked.py already makes of all of
them) and on what the files hold. So the core keeps, per workspace, one record: the world's key
and what the provider made of the files then (a digest of them). A provider that reads files
matching that digest knows the outcome without working it out again.

Sealed like every record (skyplan/records.py): a record planted by a pull request, copied from
another workspace or kept from another state is not believed, and a changed state or file
simply misses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from skyplan import records
from skyplan.sdk.provider import ReadMemo

RECORD = "refresh.json"
_PURPOSE = "refresh"


def world_key(verdict_key: str) -> bytes:
    """The memo's key for the world of a state whose checks' key (state/checked.py) is `verdict_key`."""
    return hashlib.sha256(b"refresh\0" + verdict_key.encode("ascii")).hexdigest().encode("ascii")


class RefreshMemo(ReadMemo):
    def __init__(self, folder: Path, world: bytes, workspace: Path) -> None:
        self._folder = folder
        self._world = world
        self._workspace = workspace
        self._recalled: bytes | None = None
        self._asked = False

    def recall(self) -> bytes | None:
        if not self._asked:
            self._asked = True
            body = records.recall(self._folder, RECORD, _PURPOSE, self._workspace)
            head = self._world + b"\n"
            if body is not None and body.startswith(head):
                self._recalled = body[len(head) :]
        return self._recalled

    def keep(self, body: bytes) -> None:
        if b"\n" in body or len(body) > records.LIMIT // 2:
            raise ValueError("a refresh memo is one short line")
        if self.recall() == body:
            return  # already on disk: a plan that changes nothing writes nothing
        records.keep(self._folder, RECORD, _PURPOSE, self._world + b"\n" + body, self._workspace)
        self._recalled = body
