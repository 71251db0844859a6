"""The stand-in for a standard output that was closed when the command started."""

from __future__ import annotations

import io

from skyplan.errors import OutputError

CLOSED = "cannot write to standard output: it is closed"


class ClosedOutput(io.TextIOBase):
    """Refuses every write with OutputError, which the CLIs report on stderr (exit 1)."""

    def write(self, text: str) -> int:
        if not text:
            return 0
        raise OutputError(CLOSED)

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True
