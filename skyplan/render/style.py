"""Colour, only on a terminal, never with NO_COLOR (https://no-color.org) or --no-color."""

from __future__ import annotations

import os
import sys
from typing import TextIO

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2", "cyan": "36"}


def use_colour(stream: TextIO | None = None, *, refused: bool = False) -> bool:
    """Whether to colour `stream`; `refused` is the user's --no-color."""
    stream = stream or sys.stdout
    if refused or os.environ.get("NO_COLOR", "") != "":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class Style:
    def __init__(self, colour: bool):
        self.colour = colour

    def __call__(self, text: str, *names: str) -> str:
        if not self.colour or not names:
            return text
        codes = ";".join(_CODES[n] for n in names)
        return f"\x1b[{codes}m{text}\x1b[0m"


PLAIN = Style(False)
