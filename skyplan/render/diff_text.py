"""A unified diff between two versions of a file, as `skyplan fmt --diff` shows it."""

from __future__ import annotations

import difflib

from skyplan.render.style import PLAIN, Style


def render_diff(before: str, after: str, display: str, style: Style = PLAIN) -> str:
    """git's shape (`--- a/FILE`, `+++ b/FILE`), so that patch tools and reviewers read it as usual."""
    name = display.lstrip("/")
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{name}", f"b/{name}"
    )
    out = []
    for line in lines:
        text = line.rstrip("\n")
        if line.startswith(("---", "+++")):
            out.append(style(text, "bold"))
        elif line.startswith("@@"):
            out.append(style(text, "cyan"))
        elif line.startswith("+"):
            out.append(style(text, "green"))
        elif line.startswith("-"):
            out.append(style(text, "red"))
        else:
            out.append(text)
        if not line.endswith("\n"):
            out.append("\\ No newline at end of file")
    return "".join(f"{line}\n" for line in out)
