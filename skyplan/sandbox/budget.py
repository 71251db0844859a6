"""What the render running in this thread has used so far: its deadline and its nested calls.

One budget per thread, because status probes render hook templates in a thread pool. The
deadline is checked by the sandbox between steps and by the size estimates during long walks.
In the main thread an interval timer backs this up: a filter's own Python loop (|urlize of
a long text, say) has no step the sandbox sees, but SIGALRM interrupts it all the same; and the
process's data segment is capped for the render's duration, so that values kept alive in a loop
raise MemoryError in the render rather than fill the machine.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from skyplan.sandbox import LimitExceeded, Limits


class Budget:
    __slots__ = ("limits", "deadline", "calls", "expired")

    def __init__(self, limits: Limits):
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.calls = 0  # sandboxed calls currently running, nested in each other
        self.expired = False  # the time limit has been raised once already


_local = threading.local()


def active() -> Budget | None:
    return getattr(_local, "budget", None)


@contextmanager
def running(limits: Limits) -> Iterator[Budget]:
    """A fresh budget for one render in this thread (the previous one is back afterwards)."""
    previous = active()
    _local.budget = budget = Budget(limits)
    alarm = _arm(budget) if previous is None else None
    memory = _cap_memory(limits) if previous is None else None
    try:
        yield budget
    finally:
        _local.budget = previous  # first: an alarm from now on finds no budget and does nothing
        if alarm is not None:
            _disarm(*alarm)
        if memory is not None:
            _uncap_memory(memory)


def _arm(budget: Budget):
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return None
    try:
        handler = signal.signal(signal.SIGALRM, _on_alarm)
    except ValueError:  # not the main interpreter
        return None
    timer = signal.setitimer(signal.ITIMER_REAL, max(budget.limits.seconds, 0.001))
    return handler, timer, time.monotonic()


def _disarm(handler, timer: tuple[float, float], armed: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL if handler is None else handler)
    if timer[0]:  # someone else's timer was running: it goes on where it would have been
        signal.setitimer(signal.ITIMER_REAL, max(timer[0] - (time.monotonic() - armed), 0.001), timer[1])


def _on_alarm(signum, frame) -> None:
    budget = active()
    if budget is None or budget.expired:
        return  # a check between steps raised it first: an alarm now would only hide where
    left = budget.deadline - time.monotonic()
    if left > 0:  # early (the clocks differ slightly): wait for the rest
        signal.setitimer(signal.ITIMER_REAL, left + 0.001)
        return
    tick()


def tick() -> None:
    """Raise LimitExceeded once the running render is past its deadline."""
    budget = active()
    if budget is not None and time.monotonic() > budget.deadline:
        budget.expired = True
        raise LimitExceeded(f"took longer than {budget.limits.seconds:g} seconds (the time limit)")


def _cap_memory(limits: Limits) -> tuple[int, int] | None:
    """Lower RLIMIT_DATA to what the process uses now plus the render's allowance; the limits
    before, to put back. Python then raises MemoryError in the render instead of the machine
    running out. Process-wide, so only from the main thread (where links.yaml is rendered)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import resource

        used = _data_bytes()
        before = resource.getrlimit(resource.RLIMIT_DATA)
        soft, hard = before
        cap = used + limits.memory_bytes
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        if soft != resource.RLIM_INFINITY and soft <= cap:
            return None  # already as tight
        resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    except (ImportError, OSError, ValueError):
        return None  # not Linux, or no /proc: the time and size limits still hold
    return before


def _uncap_memory(before: tuple[int, int]) -> None:
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_DATA, before)
    except (OSError, ValueError):
        pass


def _data_bytes() -> int:
    """The process's data segment now, stack included (statm's `data`): at least the VmData that
    RLIMIT_DATA is compared with. Read raw, since hook argv renders come thousands at a time."""
    fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fields = os.read(fd, 256).split()
    finally:
        os.close(fd)
    return int(fields[5]) * _PAGE


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
