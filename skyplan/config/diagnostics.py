"""Diagnostics: one problem found in the input, with where it is."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Severity = Literal["error", "warning"]
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Diagnostic:
    message: str
    severity: Severity = "error"
    # Where in the document (("clusters", 2, "endpoint")); turned into line/column by a Locator.
    path: Path = ()
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    at_key: bool = False  # point at the key itself (unknown keys), not at its value
    # The place the message begins with, as a reader of the file writes it ("links[3]"), when it
    # is not `path` written out ("links[3].target" for a rule about the whole link).
    where: str | None = None

    def located(self, file: str, position: tuple[int, int] | None) -> Diagnostic:
        line, column = position if position else (None, None)
        return replace(self, file=file, line=line, column=column)

    @property
    def detail(self) -> str:
        """The message without the document place it begins with: for a reader who has no
        document (skyctl judges a state as if it were one)."""
        where = self.where if self.where is not None else format_path(self.path)
        if where and self.message.startswith(where + ": "):
            return self.message[len(where) + 2 :]
        return self.message

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
            where += ": "
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}{prefix}{self.message}"


def format_path(path: Path) -> str:
    """('clusters', 2, 'subnets', 0) -> 'clusters[2].subnets[0]'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def errors_in(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.severity == "error"]
