"""The value of a plain YAML 1.2 scalar, as ruamel.yaml types and makes it, without importing it.

A copy of ruamel.yaml's YAML 1.2 implicit resolvers (ruamel/yaml/resolver.py) and of what its
safe constructor makes of a null, bool, int or float (ruamel/yaml/constructor.py): the usual
links.yaml is read by config/block_lines.py, and importing ruamel.yaml only for these few rules
would cost more than reading the file. tests/config/test_scalars.py holds the copy to ruamel's
own table and values, so that both loading paths keep reading `0o17` or `.inf` alike.
"""

from __future__ import annotations

import re
from typing import Any


class Declined(Exception):
    """A plain scalar the fast loading paths leave to `source.parse` (a date, `<<`, `=`, a huge integer)."""


# (tag, pattern, flags, first characters) for YAML 1.2, in ruamel's order: the first that matches wins.
IMPLICIT_RESOLVERS = [
    ("tag:yaml.org,2002:bool", """^(?:true|True|TRUE|false|False|FALSE)$""", re.X, "tTfF"),
    (
        "tag:yaml.org,2002:float",
        """^(?:
         [-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\\.(?:inf|Inf|INF)
        |\\.(?:nan|NaN|NAN))$""",
        re.X,
        "-+0123456789.",
    ),
    (
        "tag:yaml.org,2002:int",
        """^(?:[-+]?0b[0-1_]+
        |[-+]?0o?[0-7_]+
        |[-+]?[0-9_]+
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
        "-+0123456789",
    ),
    ("tag:yaml.org,2002:merge", "^(?:<<)$", 0, "<"),
    (
        "tag:yaml.org,2002:null",
        """^(?: ~
        |null|Null|NULL
        | )$""",
        re.X,
        ("~", "n", "N", ""),
    ),
    (
        "tag:yaml.org,2002:timestamp",
        """^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
        (?:[Tt]|[ \\t]+)[0-9][0-9]?
        :[0-9][0-9] :[0-9][0-9] (?:\\.[0-9]*)?
        (?:[ \\t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
        re.X,
        "0123456789",
    ),
    ("tag:yaml.org,2002:value", "^(?:=)$", 0, "="),
    ("tag:yaml.org,2002:yaml", "^(?:!|&|\\*)$", 0, "!&*"),
]

_BY_FIRST: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _tag, _pattern, _flags, _firsts in IMPLICIT_RESOLVERS:
    _compiled = re.compile(_pattern, _flags)
    for _first in _firsts:
        _BY_FIRST.setdefault(_first, []).append((_tag.rsplit(":", 1)[1], _compiled))

# As ruamel computes them (a NaN made by arithmetic, not float("nan")).
_INF = 1e300
while _INF != _INF * _INF:
    _INF *= _INF
_NAN = -_INF / _INF
_64_BITS = 2**63
_BOOLS = {"true": True, "false": False}


def plain_value(text: str) -> Any:
    """The value of the plain (unquoted, untagged) scalar `text`: str, None, bool, int or float.

    Raises Declined for the types the fast paths leave to `source.parse`, and for integers beyond
    64 bits, which `parse` refuses with their position; a ValueError for an integer Python will
    not read (thousands of digits), which `parse` refuses too.
    """
    for kind, pattern in _BY_FIRST.get(text[0] if text else "", ()):
        if pattern.match(text):
            break
    else:
        return text
    if kind == "null":
        return None
    if kind == "bool":
        return _BOOLS[text.lower()]
    if kind == "int":
        value = _int(text)
        if not -_64_BITS <= value < _64_BITS:
            raise Declined(text)
        return value
    if kind == "float":
        return _float(text)
    raise Declined(text)  # timestamps, merge keys, `=`: rare in links.yaml, and typed apart by `parse`


def _int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    if digits == "0":
        return 0
    if digits.startswith("0b"):
        return sign * int(digits[2:], 2)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    return sign * int(digits)


def _float(text: str) -> float:
    digits = text.replace("_", "").lower()
    sign = -1 if digits[0] == "-" else 1
    if digits[0] in "+-":
        digits = digits[1:]
    if digits == ".inf":
        return sign * _INF
    if digits == ".nan":
        return _NAN
    return sign * float(digits)
