"""The line reader (config/block_lines.py) reads what it accepts exactly as the careful path does.

It is the first thing `source.parse_fast` tries; tests/config/test_fast_parity.py compares
parse_fast as a whole with `source.parse`. Here the line reader alone meets the same inputs
(every text of the suite, the attacks, generated layouts and their mutations, and texts written
to sit on the edges of what it accepts): when it accepts one, `parse` must read the same data,
and it must never accept what `parse` refuses.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.generate import links_yaml, make_topology
from skyplan.config import block_lines, source
from skyplan.errors import ConfigError
from tests.config.test_fast_parity import ATTACKS, RUAMEL_COMMENT_BUG, SCALARS, SUITE, same

pytestmark = pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")

ROOT = Path(__file__).resolve().parents[2]
P = Path("x.yaml")


def read(text: str, max_values: int = source.MAX_EXPANDED_NODES):
    """The line reader's data of `text`, or None: what it declines, and plain values that
    scalars.plain_value refuses (parse_fast then gives up too)."""
    try:
        return block_lines.read(text, max_values)
    except Exception:  # noqa: BLE001 - plain_value declines by raising
        return None


def agrees(text: str):
    """Assert that what the line reader accepts, `parse` reads alike; return the reader's data."""
    data = read(text)
    if data is None:
        return None
    try:
        careful = source.parse(text, P, "x.yaml")
    except ConfigError as exc:
        if RUAMEL_COMMENT_BUG in str(exc.diagnostics[0]):
            return data  # valid YAML that ruamel cannot read; libyaml reads it alike
        raise AssertionError(f"the line reader accepted what the careful path refuses: {text[:200]!r}: {exc}") from None
    assert len(careful.documents) == 1, text[:200]
    assert same(data, careful.documents[0].data), f"{text[:200]!r}: {data!r} != {careful.documents[0].data!r}"
    return data


def test_every_text_of_the_suite_reads_alike():
    accepted = 0
    for label, text in SUITE:
        try:
            accepted += agrees(text) is not None
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from None
    assert accepted > 200  # the examples, workspaces and cases written in the usual layout


def test_the_examples_and_generated_files_take_the_line_reader():
    for path in sorted((ROOT / "examples").rglob("links.yaml")):
        text = path.read_text()
        if "{{" not in text and "\n---" not in text:  # templates are rendered first; manifests are documents
            assert agrees(text) is not None, path
    for links in (1, 10, 1000):
        assert agrees(links_yaml(make_topology(links))) is not None


def test_parse_fast_tries_the_line_reader_first(monkeypatch):
    text = links_yaml(make_topology(10))

    def no_libyaml(_text):
        raise AssertionError("libyaml's events were read")

    monkeypatch.setattr(source, "_FastBuilder", no_libyaml)
    assert source.parse_fast(text, P, "x.yaml").documents[0].data == read(text)
    assert source.parse_fast("a: &x 1\n", P, "x.yaml") is None  # declined by both: libyaml's turn failed


@pytest.mark.parametrize("name", list(ATTACKS))
def test_an_attack_reads_alike_or_is_declined(name):
    agrees(ATTACKS[name])


@pytest.mark.parametrize("scalar", SCALARS)
def test_a_value_reads_alike_in_each_place(scalar):
    for text in (
        f"value: {scalar}\n",
        f"value: {scalar} # comment\n",
        f"list: [{scalar or 'x'}]\n",
        f"list: [a, {scalar or 'x'}, b]\n",
        f"list:\n- {scalar}\n",
        f"list:\n  - {scalar}\n",
        f"{scalar}: value\n",
        f"- {scalar}\n",
    ):
        agrees(text)


# Inputs at the edges of the layout, each read alike or declined; those marked are declined.
EDGES = {
    "comment after a space": "a: b #c\n",
    "hash inside a value": "a: b#c\n",
    "hash after a quoted value": "a: 'b'#c\n",
    "hash right after a key": "a:#c\n",
    "comment after a key": "a: # c\n  b: 1\n",
    "comment after a key, then a list": "a: # c\n- 1\n\n",
    "colon inside a value": "a: b:c\n",
    "colon ending a value": "a: b:\n",
    "endpoint": "e: 192.0.2.1:51820\n",
    "endpoint in a flow list": "e: [192.0.2.1:51820]\n",
    "IPv6 network in a flow list": "s: [fd00::/64]\n",
    "quoted IPv6 endpoint": "e: \"[2001:db8::1]:51820\"\n",
    "space before the colon": "a : 1\n",
    "two spaces after the colon": "a:  1\n",
    "trailing spaces": "a: 1   \nb:   \n",
    "no final newline": "a: 1\nb: [x]",
    "quoted with an escape": 'a: "x\\ty"\n',
    "single quote escape": "a: 'it''s'\n",
    "double quote inside single": "a: 'say \"hi\"'\n",
    "quoted key": "'a': 1\n",
    "empty quoted": "a: ''\nb: \"\"\n",
    "spaces inside quotes": "a: '  x  '\n",
    "quote with a comma in a flow list": "a: ['x,y']\n",
    "trailing comma in a flow list": "a: [x, y,]\n",
    "flow list without spaces": "a: [x,y]\n",
    "flow list with inner spaces": "a: [ x , y ]\n",
    "empty flow list with a space": "a: [ ]\n",
    "flow list and more": "a: [x] y\n",
    "nested flow list": "a: [[x]]\n",
    "flow mapping": "a: {b: 1}\n",
    "compact list": "a:\n- 1\n- 2\nb: 3\n",
    "compact list in an item": "x:\n- a:\n  - 1\n  b: 2\n",
    "list item then a key at the list's indent": "a:\n  - 1\n  b: 2\n",
    "item mapping, next key misaligned": "x:\n- a: 1\n   b: 2\n",
    "item mapping, next key too far in": "x:\n- a: 1\n    b: 2\n",
    "wide indent": "a:\n        b: 1\n        c: 2\nd: 3\n",
    "one-space indent": "a:\n b:\n  c: 1\n",
    "dedent between levels": "a:\n    b: 1\n  c: 2\n",
    "value on the next line": "a:\n  text\n",
    "value going on over lines": "a: one\n  two\n",
    "dash going on a value": "a: x\n  - y\n",
    "item going on": "x:\n- a\n  b\n",
    "item alone": "x:\n-\n",
    "dash and spaces": "x:\n-   a: 1\n    b: 2\n",
    "nested lists": "x:\n- - a\n",
    "a list at the root": "- a\n- b\n",
    "a scalar document": "just text\n",
    "only comments": "# a\n# b\n",
    "document start": "---\na: 1\n",
    "document start with a comment": "--- # c\na: 1\n",
    "document start and content": "--- a: 1\n",
    "second document": "a: 1\n---\nb: 2\n",
    "document end": "a: 1\n...\n",
    "dashes as a key's value": "a: ---\n",
    "dots as a value": "a: ...\n",
    "indented dashes": "a:\n  ---\n",
    "duplicate keys": "a: 1\na: 2\n",
    "duplicate keys in an item": "x:\n- a: 1\n  a: 2\n",
    "bool key": "true: 1\n",
    "null key": "null: 1\n",
    "tilde key": "~: 1\n",
    "underscore number key": "_1: 1\n",
    "YAML 1.1 boolean keys and values": "yes: on\nno: off\ny: n\n",
    "key of 128 characters": "k" * 128 + ": 1\n",
    "key of 129 characters": "k" * 129 + ": 1\n",
    "key of 1100 characters": "k" * 1100 + ": 1\n",
    "long value": "a: " + "v" * 100_000 + "\n",
    "huge integer": "a: " + "9" * 5000 + "\n",
    "64-bit integer": "a: 9223372036854775807\nb: 9223372036854775808\n",
    "date": "a: 2026-11-24\n",
    "merge key": "<<: {a: 1}\n",
    "anchor": "a: &x 1\n",
    "alias": "a: 1\nb: *x\n",
    "tag": "a: !!str 1\n",
    "tab": "a:\t1\n",
    "tab indent": "a:\n\tb: 1\n",
    "CR": "a: 1\rb: 2\r",
    "CRLF": "a: 1\r\nb: 2\r\n",
    "BOM": "\ufeffa: 1\n",
    "BOM in a comment": "a: 1 # \ufeff\n",
    "NEL in a comment": "a: 1 # \x85\nb: 2\n",
    "LS in a comment": "a: 1 # \u2028b: 2\n",
    "DEL in a comment": "a: 1 # \x7f\n",
    "C1 control in a comment": "a: 1 # \x9b\n",
    "non-ASCII in a comment": "a: 1 # café 😀\n",
    "non-ASCII in a value": "a: café\n",
    "non-ASCII quoted": "a: 'café'\n",
    "percent": "%YAML 1.2\n---\na: 1\n",
    "reserved indicator": "a: @x\n",
    "question mark": "? a\n: 1\n",
    "block scalar": "a: |\n  x\n",
    "minus signs": "a: -1\nb: -.5\nc: -.\n",
    "a lone minus": "a: -\n",
    "two minus signs": "a: --1\n",
    "minus and a letter": "a: -a\n",
    "dots and signs": "a: .\nb: .5\nc: +\nd: +.inf\ne: ~x\nf: x=y\ng: a@b\n",
}
DECLINED = [
    "hash inside a value", "hash right after a key", "colon ending a value", "endpoint in a flow list",
    "IPv6 network in a flow list", "space before the colon", "quoted with an escape", "single quote escape",
    "quoted key", "trailing comma in a flow list", "nested flow list", "flow mapping", "list item then a key at the list's indent",
    "item mapping, next key misaligned", "item mapping, next key too far in", "dedent between levels", "value on the next line",
    "value going on over lines", "dash going on a value", "item going on", "item alone", "dash and spaces", "nested lists",
    "a list at the root", "a scalar document", "only comments", "document start and content", "second document", "document end",
    "dashes as a key's value", "indented dashes", "duplicate keys", "duplicate keys in an item", "bool key", "null key",
    "tilde key", "key of 129 characters", "key of 1100 characters", "huge integer", "64-bit integer",
    "date", "merge key", "anchor", "alias", "tag", "tab", "tab indent", "CR", "CRLF", "BOM", "BOM in a comment",
    "NEL in a comment", "LS in a comment", "DEL in a comment", "C1 control in a comment", "non-ASCII in a value", "percent",
    "reserved indicator", "question mark", "block scalar", "hash after a quoted value", "quote with a comma in a flow list",
    "flow list and more", "a lone minus", "two minus signs", "minus and a letter",
]


@pytest.mark.parametrize("name", list(EDGES))
def test_an_edge_reads_alike(name):
    data = agrees(EDGES[name])
    assert (data is None) == (name in DECLINED), data


def test_what_the_edges_read():
    assert read(EDGES["comment after a space"]) == {"a": "b"}
    assert read(EDGES["compact list"]) == {"a": [1, 2], "b": 3}
    assert read(EDGES["compact list in an item"]) == {"x": [{"a": [1], "b": 2}]}
    assert read("a:\n- b: 1\n  c:\n  - x\n  d: [y, 'z']\ne:\n") == {"a": [{"b": 1, "c": ["x"], "d": ["y", "z"]}], "e": None}
    assert read(EDGES["YAML 1.1 boolean keys and values"]) == {"yes": "on", "no": "off", "y": "n"}  # YAML 1.2
    assert read(EDGES["document start with a comment"]) == {"a": 1}
    assert read(EDGES["spaces inside quotes"]) == {"a": "  x  "}


def test_nesting_beyond_the_reader_limit_is_declined():
    deep = "".join(" " * i + f"k{i}:\n" for i in range(40)) + " " * 40 + "v: 1\n"
    assert agrees(deep) is None
    shallow = "".join(" " * i + f"k{i}:\n" for i in range(20)) + " " * 20 + "v: 1\n"
    assert agrees(shallow) is not None


def test_more_values_than_the_limit_are_left_to_the_counting_path():
    text = "a:\n" + "- 1\n" * 10
    assert read(text, max_values=100) == {"a": [1] * 10}
    assert read(text, max_values=10) is None


# -- generated layouts and their mutations ---------------------------------------------------------

KEYS = ["a", "b", "name", "source", "target", "subnets", "x1", "on", "yes", "a-b", "a_", "true", "null", "_1", "y", "k" * 130]
VALUES = [
    "x", "1", "-1", "1.5", "true", "null", "~", "10.0.0.0/24", "198.18.0.1:51820", "[a, b]", "[]", "[ ]", "[a,b]", '"q"',
    "'s'", "a:b", "0x1f", "", "a:", "-", "--", ".", "...", "~x", '"a#b"', "'a#b'", '["a", \'b\']', "[a:b]", "[-1, .5]",
    "[a,]", "a#b", "1_000", "2026-01-01", "9" * 30, "+", "1e3", ".inf", ".nan", "True", "0o17", "017", "=", "a@b", "@a",
    "[fd00::/64]", "'it''s'", '""', "''", '" a "', "a b", '"\\"', "é", "'é'", "0b1", "1:20",
]
COMMENTS = ["", "", "", " # c", "  #c", "#c", " #", " # é"]


def _layout(rng: random.Random) -> str:
    """A random tree written as block YAML, in one of the layouts people use, perhaps damaged."""

    def tree(depth: int):
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return rng.choice(VALUES)
        if roll < 0.7:
            return {rng.choice(KEYS): tree(depth + 1) for _ in range(rng.randint(0, 4))}
        return [tree(depth + 1) for _ in range(rng.randint(0, 4))]

    step = rng.choice([1, 2, 2, 4])
    out: list[str] = []

    def comment() -> str:
        return rng.choice(COMMENTS)

    def pair(key, value, indent: int, lines: list[str]) -> None:
        if isinstance(value, dict | list) and value:
            lines.append(" " * indent + key + ":" + comment())
            write(value, indent + (rng.choice([0, step]) if isinstance(value, list) else step))
            return
        if isinstance(value, dict | list):
            value = "[]" if isinstance(value, list) else ""
        lines.append(" " * indent + key + ":" + (" " + value if value else "") + comment())

    def write(node, indent: int) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                pair(key, value, indent, out)
            return
        for value in node:
            if isinstance(value, dict) and value:
                start = len(out)
                for key, inner in value.items():
                    pair(key, inner, indent + 2, out)
                out[start] = " " * indent + "- " + out[start][indent + 2 :]
            else:
                shown = "[]" if isinstance(value, list) else ("x" if isinstance(value, dict) else value or "x")
                out.append(" " * indent + "- " + shown + comment())

    write({rng.choice(KEYS): tree(1) for _ in range(rng.randint(1, 4))}, 0)
    for _ in range(rng.randint(0, 2) if rng.random() < 0.5 else 0):
        i = rng.randrange(len(out))
        roll = rng.random()
        if roll < 0.3:
            out[i] = " " + out[i]
        elif roll < 0.5:
            out[i] = out[i].removeprefix(" ")
        elif roll < 0.7:
            out.insert(i, rng.choice(["", "#c", "  # c", "---", "  x", "- y"]))
        elif roll < 0.85:
            out[i] += rng.choice(["#x", " #x", ":", " :", ",", " y"])
        elif len(out) > 1:
            del out[i]
    if rng.random() < 0.1:
        out.insert(0, rng.choice(["---", "--- # c", "# c"]))
    return "\n".join(out) + rng.choice(["\n", "", "\n\n"])


@settings(max_examples=3000, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_generated_layouts_read_alike(rng):
    agrees(_layout(rng))


def test_generated_layouts_are_mostly_accepted():
    rng = random.Random(7)
    accepted = sum(read(_layout(rng)) is not None for _ in range(500))
    assert accepted > 50  # the comparison above is not one of declines only
