"""Attribute values as plans show them: HCL-like literals, stable and on one line."""

from __future__ import annotations

import json
from typing import Any

from skyplan.render.errors import escaped

KNOWN_AFTER_APPLY = "(known after apply)"


def literal(value: Any) -> str:
    if type(value) is str and value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'  # what json.dumps gives for it, without its call: plans show thousands
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        # Keys escaped as attribute names are: a key from a plan file anyone may have edited
        # must not break the plan into lines of its choosing.
        return "{ " + ", ".join(f"{escaped(str(k))} = {literal(v)}" for k, v in sorted(value.items())) + " }"
    return json.dumps(str(value))
