"""Progress lines shown as they come, a burst at a time.

An apply reports each finished resource on its own line, and a local apply finishes 10,000 of them
within a few milliseconds: a write and a flush of each line cost more than all the rest of their
reporting (about 30 ms at 10,000 links, 0.3 s at 100,000). Lines that come within INTERVAL of the
last write wait for it and go out together; a line that comes after a quiet spell goes out at
once, and none waits longer than INTERVAL (a timer writes what is left), so a slow apply (a
gateway at a time) still shows each result as it happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from skyplan.errors import OutputError


class Lines:
    INTERVAL = 0.05  # seconds a line may wait for the ones after it

    def __init__(self, show: Callable[[str], None]) -> None:
        self._show = show
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._last = float("-inf")  # when the last write was made (monotonic)
        self._timer: threading.Timer | None = None
        # The output could not be written (a full disk, a reader gone): what the caller reports
        # once its work is done; no more lines are tried.
        self.failed: BaseException | None = None
        self._crash: BaseException | None = None  # a bug met by the timer's write: raised by close

    def add(self, line: str) -> None:
        with self._lock:
            if self.failed is not None:
                return
            self._pending.append(line)
            if time.monotonic() - self._last >= self.INTERVAL:
                self._write()
            elif self._timer is None:
                timer = threading.Timer(self.INTERVAL, self._due)
                timer.daemon = True
                try:
                    timer.start()
                except RuntimeError:  # no thread to be had: the line goes out now instead
                    self._write()
                else:
                    self._timer = timer

    def close(self) -> None:
        """Write what is pending and stop the timer: after this, the caller may write again."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            timer.join()
        with self._lock:
            self._write()
        if self._crash is not None:
            raise self._crash

    def _due(self) -> None:
        with self._lock:
            self._timer = None
            try:
                self._write()
            except Exception as exc:  # noqa: BLE001 - not lost in the timer's thread: close raises it
                self._crash = exc

    def _write(self) -> None:
        # Called with the lock held.
        if not self._pending or self.failed is not None:
            return
        text, self._pending = "".join(self._pending), []
        try:
            self._show(text)
        except (OutputError, BrokenPipeError) as exc:
            self.failed = exc
        self._last = time.monotonic()
