"""What the render running in this thread has used so far: its deadline and its nested calls.

One budget per thread, because status probes render hook templates in a thread pool. Checked
by the sandbox between steps and by the size estimates during long walks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from skyplan.sandbox import LimitExceeded, Limits


class Budget:
    __slots__ = ("limits", "deadline", "calls")

    def __init__(self, limits: Limits):
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.calls = 0  # sandboxed calls currently running, nested in each other


_local = threading.local()


def active() -> Budget | None:
    return getattr(_local, "budget", None)


@contextmanager
def running(limits: Limits) -> Iterator[Budget]:
    """A fresh budget for one render in this thread (the previous one is back afterwards)."""
    previous = active()
    _local.budget = budget = Budget(limits)
    try:
        yield budget
    finally:
        _local.budget = previous


def tick() -> None:
    """Raise LimitExceeded once the running render is past its deadline."""
    budget = active()
    if budget is not None and time.monotonic() > budget.deadline:
        raise LimitExceeded(f"took longer than {budget.limits.seconds:g} seconds (the time limit)")
