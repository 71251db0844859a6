"""Python's cycle collector paused while a command builds a large structure that holds no cycles."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# Set by the console scripts only (cli/entry.py): a process that runs one command and exits.
# Code imported as a library (tests, a caller's program) is never frozen behind its back.
_SETTLING = False


def settle_in_this_process() -> None:
    global _SETTLING
    _SETTLING = True


# What a console-script command made and used to its end, held until the process exits (which
# frees nothing one by one: cli/entry.py).
_KEPT: list[object] = []


def keep_to_the_end(value: object) -> None:
    """Hold `value` until the process exits, in a process that runs one command and exits:
    freeing a 10,000-link state object by object takes milliseconds that an exit does not need."""
    if _SETTLING:
        _KEPT.append(value)


def keep_collecting() -> None:
    """This process lives on (`skyctl get -w`): nothing more is frozen, and what was goes back to
    the collector. A frozen cycle is never collected, and a watch that froze on every redraw
    would keep each redraw's cycles (the JSON and YAML encoders make some) until it is stopped."""
    global _SETTLING
    if _SETTLING:  # only what settle froze: a library caller's own gc.freeze is theirs
        _SETTLING = False
        gc.unfreeze()


@contextlib.contextmanager
def paused(*, settle: bool = False) -> Iterator[None]:
    """No cyclic garbage collection inside the block; as it was after it.

    Loading a configuration or taking a `skyctl get` snapshot makes hundreds of thousands of
    objects that live on together and are freed by reference counting; each collection meanwhile
    walks all of them again and finds nothing (a third of validating 100,000 links).

    With `settle`, what the block made is also left out of later collections (gc.freeze, which
    takes everything the collector tracks then, cycles already dropped among it): the
    configuration, state and plan a command builds live until it exits, and the first
    collection after the block would otherwise walk all of them once more (50 ms of a 10k-link
    plan). Frozen objects are still freed by reference counting; only a cycle among them would
    outlive its use, so a block that settles must make none. Only in a console-script process,
    and not once it lives on (keep_collecting: a watch).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if settle and _SETTLING:
            gc.freeze()
        if enabled:
            gc.enable()


def paused_in_a_command() -> contextlib.AbstractContextManager[None]:
    """`paused()` in a console-script process; nothing in a library caller's program, whose other
    threads a long block (an apply waiting on SSH gateways and hooks) would hold up too."""
    return paused() if _SETTLING else contextlib.nullcontext()
