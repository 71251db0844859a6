"""scalars.plain_value types every plain scalar exactly as ruamel.yaml's YAML 1.2 rules do.

It is a copy (the usual links.yaml loads without importing ruamel.yaml): its table must stay
ruamel's, and its values those of ruamel's resolver and safe constructor, for every scalar the
suite and the generated strings below can think of.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyplan.config import scalars
from tests.config.test_fast_parity import SCALARS, same


def _ruamel_value(text: str):
    """What ruamel.yaml makes of a plain scalar under YAML 1.2: ("value", v), ("tag", t) for a
    type the fast paths leave to `parse`, or ("error", type) when its constructor fails."""
    from ruamel.yaml import YAML
    from ruamel.yaml.nodes import ScalarNode
    from ruamel.yaml.resolver import VersionedResolver

    global _RUAMEL
    if _RUAMEL is None:

        class Yaml12Resolver(VersionedResolver):
            @property
            def processing_version(self):
                return (1, 2)

        yaml = YAML(typ="safe", pure=False)
        yaml.Resolver = Yaml12Resolver
        _RUAMEL = (yaml.resolver, yaml.constructor)
    resolver, constructor = _RUAMEL
    tag = str(resolver.resolve(ScalarNode, text, (True, False)))
    kind = tag.rsplit(":", 1)[1]
    if kind == "str":
        return ("value", text)
    if kind not in ("null", "bool", "int", "float"):
        return ("tag", kind)
    try:
        return ("value", constructor.construct_non_recursive_object(ScalarNode(tag, text)))
    except Exception as exc:  # noqa: BLE001 - compared by type
        return ("error", type(exc))


_RUAMEL = None


def _ours(text: str):
    try:
        return ("value", scalars.plain_value(text))
    except scalars.Declined:
        return ("declined", None)
    except Exception as exc:  # noqa: BLE001 - compared by type
        return ("error", type(exc))


def agree(text: str) -> None:
    ours, theirs = _ours(text), _ruamel_value(text)
    if theirs[0] == "value" and type(theirs[1]) is int and not -(2**63) <= theirs[1] < 2**63:
        assert ours == ("declined", None), text  # beyond 64 bits: left to `parse`, which refuses it
        return
    if theirs[0] == "tag":
        assert ours == ("declined", None), text
        return
    assert ours[0] == theirs[0], (text, ours, theirs)
    if ours[0] == "value":
        assert same(ours[1], theirs[1]), (text, ours, theirs)
        if isinstance(ours[1], float) and not math.isnan(ours[1]):
            assert math.copysign(1, ours[1]) == math.copysign(1, theirs[1]), text  # -0.0 stays negative
    else:
        assert ours[1] is theirs[1], (text, ours, theirs)


def test_the_table_is_ruamels():
    from ruamel.yaml.resolver import implicit_resolvers

    theirs = [(tag, regexp.pattern, regexp.flags, tuple(firsts)) for versions, tag, regexp, firsts in implicit_resolvers if (1, 2) in versions]
    ours = [(tag, pattern, __import__("re").compile(pattern, flags).flags, tuple(firsts)) for tag, pattern, flags, firsts in scalars.IMPLICIT_RESOLVERS]
    assert ours == theirs


EDGES = [
    "", "~", "null", "Null", "NULL", "nULL", "nul", "true", "True", "TRUE", "tRUE", "false", "False", "FALSE", "yes", "no",
    "on", "off", "y", "n", "0", "-0", "+0", "00", "007", "08", "09", "017", "0o17", "0o", "0o8", "0x", "0x1F", "0x_1F",
    "-0x1f", "+0b101", "0b", "0b2", "_", "__", "_1", "1_", "1__0", "-_1", "+", "-", ".", "..", "-.", "+.", "1.", "-1.",
    ".5", "-.5", "+.5", ".5e3", ".5e+3", ".5e-3", "1e3", "1E3", "1e+3", "1e-3", "1.5e3", "1_000.5", "1_000", ".inf",
    "-.inf", "+.inf", ".Inf", ".INF", "+.INF", ".iNF", ".nan", ".NaN", ".NAN", "-.nan", ".nAn", "1e", "1e+", "-0.0",
    "0.0", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "18446744073709551615", "0x" + "f" * 16, "0x" + "f" * 15, "0x" + "f" * 40, "1" * 5000, "1" * 4300, "1" * 4301,
    "2026-11-24", "2026-1-2", "2026-11-24T10:00:00Z", "2026-11-24 10:00:00", "2026-02-30", "<<", "<", "=", "==", "!",
    "&", "*", "10.0.0.0/8", "192.0.2.1:51820", "1:20", "190:20:30", "1e400", "-1e400", "1\n", "true\n", "0x1\n",
    "٣", "１２", "1_000_000", "0_1", "0b_1", "0x_", "0o_7", "- 1", "+-1", "--1", "1-1",
]


@pytest.mark.parametrize("text", EDGES + [s for s in SCALARS if s not in EDGES])
def test_an_edge_scalar_reads_as_ruamel_reads_it(text):
    agree(text)


@settings(max_examples=4000, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet="0123456789_-+.eEoxXbOBaAfFiInNtTrRuUlLsSyY~<=:", max_size=12))
def test_generated_scalars_read_as_ruamel_reads_them(text):
    agree(text)


def test_loading_the_usual_file_does_not_import_ruamel(tmp_path):
    # The reason for the copy: it must hold. A fresh interpreter, as the CLI is.
    from bench.generate import links_yaml, make_topology

    path = tmp_path / "links.yaml"
    path.write_text(links_yaml(make_topology(100)))
    code = (
        "import sys; from pathlib import Path; from skyplan.config import source; "
        f"s = source.parse_fast(Path({str(path)!r}).read_text(), Path('x'), 'x'); "
        "assert s is not None; print(sorted(m for m in sys.modules if m.startswith(('ruamel', '_ruamel'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
