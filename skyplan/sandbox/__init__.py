"""Limits for the templates users write (links.yaml templates, hook argv): time, size, recursion.

links.yaml templates and the provider's hook argv templates come from pull requests in CI, so a
template must neither reach Python nor run for ever, fill memory or crash the interpreter.
`skyplan.sandbox.environment` holds the jinja2 side; this module stays free of jinja2 so that
naming a limit costs an untemplated run nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

# Integers beyond this many bits are refused: they only come from `**`/`*` chains, and Python
# takes seconds (uninterruptibly) to multiply or print numbers of millions of bits.
INT_BITS = 4096


@dataclass(frozen=True)
class Limits:
    """What one render may use; each is named in the error when crossed."""

    seconds: float = 10.0  # wall clock for the whole render, includes and macros included
    output_chars: int = 32 * 1024 * 1024  # the rendered text, and any one string built on the way
    items: int = 1_000_000  # any one list, tuple, dict or set built on the way
    depth: int = 64  # macro calls, or includes and imports, nested in each other
    # Memory the process may grow by while rendering. Size limits hold for each value, but a
    # loop can keep thousands of distinct long strings alive and fill the machine before the
    # time limit: the data segment is capped instead (Linux, main thread, see budget.py).
    memory_bytes: int = 1024 * 1024 * 1024


class TemplateFailure(Exception):
    """A template could not be rendered: `reason` for people, `line` in the template when known.

    `kind` says what went wrong, for callers that treat some failures differently: "syntax",
    "undefined" (a variable), "not allowed" (the sandbox), "limit" (time, size, recursion) or
    "error" (anything else the template's own logic raised, such as a division by zero).
    """

    def __init__(self, reason: str, line: int | None = None, *, kind: str = "error"):
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.kind = kind


class LimitExceeded(Exception):
    """Raised inside a render when a limit is crossed; `render` turns it into a TemplateFailure.

    Not a TypeError or ValueError: filters catch those, and must not swallow this.
    """
