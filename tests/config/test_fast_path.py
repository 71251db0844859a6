"""The fast loading path and the careful one read every scalar the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyplan.config import source
from tests.config.test_fast_parity import same

SCALARS = [
    "1", "-7", "+3", "0o17", "0x1F", "017", "1e3", "1.5", ".inf", "-.inf", ".nan", "true", "false", "True",
    "yes", "no", "on", "off", "null", "~", "Null", "", "2026-11-24", "2026-11-24T10:00:00Z", "10.0.0.0/8",
    "192.0.2.1:51820", "1:20", "0b101", "1_000", "'quoted'", '"double"', "a b", "=", "!!str 5", "[1, 2]", "{a: 1}",
]


# libyaml reads a few plain scalars in flow lists more strictly, and the fast path leaves tags,
# dates and `=` (YAML's value key) to the careful one.
DECLINED = {"2026-11-24", "2026-11-24T10:00:00Z", "192.0.2.1:51820", "1:20", "=", "!!str 5"}


@pytest.mark.parametrize("scalar", SCALARS)
def test_both_paths_read_a_scalar_alike(scalar):
    text = f"value: {scalar}\nlist: [{scalar or 'x'}]\n"
    fast = source.parse_fast(text, Path("x.yaml"), "x.yaml")
    careful = source.parse(text, Path("x.yaml"), "x.yaml")
    if fast is None:
        assert scalar in DECLINED
        return
    assert same(fast.documents[0].data, careful.documents[0].data)  # types too; NaN equals NaN


@pytest.mark.parametrize(
    "text",
    [
        "%YAML 1.1\n---\nvalue: yes\n",  # version directives change the rules: careful path
        "a: 1\na: 2\n",  # duplicate keys
        "a: &x [*x]\n",  # recursive alias
        "? [complex, key]\n: value\n",  # non-string keys
        "a: !!binary aGVsbG8=\n",  # types links.yaml never holds
        "a: [\n",
    ],
)
def test_the_fast_path_steps_aside(text):
    assert source.parse_fast(text, Path("x.yaml"), "x.yaml") is None
