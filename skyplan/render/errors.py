"""Errors and warnings as one clear line each; never a traceback for expected failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skyplan.config.diagnostics import Diagnostic
from skyplan.render.style import PLAIN, Style

if TYPE_CHECKING:
    from skyplan.errors import SkyplanError


MAX_MESSAGE = 2000


def escaped(text: str) -> str:
    """`text` with its control characters escaped, so a hostile value cannot break it into lines."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text


def one_line(text: str) -> str:
    """Escape control characters so a hostile value cannot break a message into lines, and cut
    messages that quote a huge value."""
    text = escaped(text)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + f"… ({len(text) - MAX_MESSAGE} more characters)"
    return text


def failure_reason(diagnostics: list[Diagnostic]) -> str:
    """Why a resource failed, in the one line its state entry keeps (status.reason) and apply
    prints after "Failed:": its errors in order. Only here are problems run together."""
    return "; ".join(d.message for d in diagnostics if d.severity == "error") or "failed"


def render_diagnostics(diagnostics: list[Diagnostic], style: Style = PLAIN) -> str:
    lines = []
    for d in diagnostics:
        label = style("Error:", "red", "bold") if d.severity == "error" else style("Warning:", "yellow", "bold")
        where = f"{d.file}:{d.line}:{d.column}: " if d.line is not None else (f"{d.file}: " if d.file else "")
        if d.line is not None and d.column is None:
            where = f"{d.file}:{d.line}: "  # a file of lines, not of columns (a config that import reads)
        lines.append(f"{label} {where}{one_line(d.message)}")
    return "\n".join(lines) + ("\n" if lines else "")


def render_failure(exc: SkyplanError, style: Style = PLAIN, file: str | None = None) -> str:
    """Every problem an expected error carries, a line each.

    `file` names the file the problems are about when they do not say (commands that check
    several files at once); a configuration's diagnostics always do.
    """
    from skyplan.errors import ConfigError

    diagnostics = exc.diagnostics
    if file is not None and not isinstance(exc, ConfigError):
        diagnostics = [d if d.file is not None or d.message.startswith(file) else d.located(file, None) for d in diagnostics]
    return render_diagnostics(diagnostics, style)


def render_error(message: str, style: Style = PLAIN) -> str:
    return f"{style('Error:', 'red', 'bold')} {one_line(message)}\n"
