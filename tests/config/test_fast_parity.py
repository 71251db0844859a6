"""The fast loading path reads what it accepts exactly as the careful one, and declines the rest.

`source.parse_fast` builds plain data from libyaml's events; `source.parse` goes through ruamel's
composer and constructor and keeps positions. Every YAML text this suite holds (files, the
validation and fmt cases, string literals of the test modules), generated topologies, attack
inputs and random fragments go through both: equal data, or the fast path declined (None) and the
careful path decides. The fast path never raises and never accepts what the careful path refuses.
"""

from __future__ import annotations

import ast
import datetime
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from bench.generate import links_yaml, make_topology
from skyplan.config import source
from skyplan.errors import ConfigError

# Some inputs reuse an anchor on purpose; ruamel warns about it on the careful path.
pytestmark = pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")

ROOT = Path(__file__).resolve().parents[2]
P = Path("x.yaml")


def same(a, b) -> bool:
    """Equal values of the same types all the way down (NaN equals NaN; -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def outcome(text: str):
    """What each path makes of `text`: asserts they agree, returns the fast path's result."""
    fast = source.parse_fast(text, P, "x.yaml")
    try:
        careful = source.parse(text, P, "x.yaml")
    except ConfigError as exc:
        if RUAMEL_COMMENT_BUG in str(exc.diagnostics[0]):
            return fast  # valid YAML ruamel cannot read: libyaml can, and the fast path may
        assert fast is None, f"the fast path accepted what the careful one refuses: {text[:200]!r}"
        return None
    if fast is not None:
        assert len(fast.documents) == len(careful.documents), text[:200]
        for f, c in zip(fast.documents, careful.documents):
            assert same(f.data, c.data), f"{text[:200]!r}: {f.data!r} != {c.data!r}"
    return fast


# ruamel.yaml fails on a comment between a key and its value followed by blank lines
# ("overlap in comment"); `parse` reports it, the fast path reads such a (valid) file.
RUAMEL_COMMENT_BUG = "cannot read a comment between a key and its value"


def test_a_comment_ruamel_cannot_read_is_reported_cleanly():
    text = "a: #c\n  t\n\n"
    with pytest.raises(ConfigError) as refused:
        source.parse(text, P, "x.yaml")
    assert RUAMEL_COMMENT_BUG in str(refused.value.diagnostics[0])
    assert source.parse_fast(text, P, "x.yaml").documents[0].data == {"a": "t"}


def _suite_texts() -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    for folder in ("tests", "examples"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".yaml", ".yml") and path.is_file():
                texts.append((str(path.relative_to(ROOT)), path.read_text(errors="surrogateescape")))
    cases = YAML(typ="safe").load((ROOT / "tests/config/validation_cases.yaml").read_text())
    texts += [(f"validation case {case['id']}", case["file"]) for case in cases if isinstance(case.get("file"), str)]
    # String literals of the test modules: the inline documents of every test.
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value and len(node.value) < 200_000:
                texts.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.value))
    return texts


SUITE = _suite_texts()


def test_the_suite_holds_many_documents():
    assert len(SUITE) > 1000


def test_every_text_of_the_suite_reads_alike_on_both_paths():
    accepted = 0
    for label, text in SUITE:
        try:
            accepted += outcome(text) is not None
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from None
    assert accepted > len(SUITE) // 4  # the fast path is the common one, not a path that declines all


@pytest.mark.parametrize("links", [1, 10, 1000])
def test_generated_topologies_read_alike_and_fast(links):
    assert outcome(links_yaml(make_topology(links))) is not None


SCALARS = [
    "1", "-7", "+3", "0o17", "0x1F", "0x_1F", "017", "09", "1e3", "1.5", "1_000.5", ".5", "-.5e+3", ".inf", "-.inf",
    "+.INF", ".nan", ".NaN", "true", "false", "True", "TRUE", "tRue", "yes", "no", "on", "off", "y", "n", "null", "~",
    "Null", "NULL", "nULL", "", "2026-11-24", "2026-11-24T10:00:00Z", "2026-02-30", "10.0.0.0/8", "192.0.2.1:51820",
    "1:20", "190:20:30", "0b101", "0b", "0x", "0o", "1_000", "_1", "1__0", "'quoted'", '"double"', "a b", "=", "<<",
    "!!str 5", "!!int 5", "! 5", "!x 5", "[1, 2]", "{a: 1}", "|\n  block\n", ">-\n  folded\n  text\n", "'it''s'",
    '"tab\\there"', '"\\x41"', "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "0x" + "f" * 40, "1" * 5000, "é", "日本", "😀", "a\u2028b",
    "- nested", "? complex", "&a 1", "*a", "@reserved", "`tick", "%", "#comment", "a #comment", "a: b", "1e", "1e+",
]


@pytest.mark.parametrize("scalar", SCALARS)
def test_a_scalar_reads_alike_in_every_place(scalar):
    for text in (
        f"value: {scalar}\n",
        f"list: [{scalar or 'x'}]\n",
        f"map: {{k: {scalar}}}\n",
        f"- {scalar}\n",
        f"{scalar}: value\n",
        f"? {scalar}\n: value\n",
        f"{scalar}\n",
        f"--- {scalar}\n--- {scalar}\n",
    ):
        outcome(text)


def test_plain_scalars_keep_their_types():
    fast = outcome("a: 1\nb: 1.5\nc: true\nd: null\ne: '1'\nf: 0x10\ng: .inf\nh: text\n")
    assert fast is not None
    assert fast.documents[0].data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "1", "f": 16, "g": math.inf, "h": "text"}


# -- attacks: each must come out as the careful path decides, and quickly ---------------------------

ATTACKS = {
    "deep flow nesting": "a: " + "[" * 100_000,
    "deep flow nesting, closed": "a: " + "[" * 70 + "]" * 70 + "\n",
    "nesting at the limit": "a: " + "[" * 63 + "1" + "]" * 63 + "\n",
    "nesting one past the limit": "a: " + "[" * 64 + "1" + "]" * 64 + "\n",
    "nesting two past the limit": "a: " + "[" * 65 + "1" + "]" * 65 + "\n",
    "deep block nesting": "".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v\n",
    "deep mapping flow": "a: " + "{b: " * 80 + "1" + "}" * 80 + "\n",
    "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)),
    "small alias fan": "base: &b {port: 1}\nx: *b\ny: [*b, *b]\n",
    "alias to a scalar key": "k: &k name\n*k : 1\n",
    "alias to a mapping key": "k: &k {a: 1}\n? *k\n: 1\n",
    "recursive alias": "a: &x [*x]\n",
    "recursive mapping alias": "a: &x {b: *x}\n",
    "undefined alias": "a: *nothing\n",
    "reused anchor": "a: &x 1\nb: &x 2\nc: *x\n",
    "anchor across documents": "a: &x 1\n---\nb: *x\n",
    "huge decimal": "a: " + "9" * 10_000 + "\n",
    "huge hex": "a: 0x" + "f" * 10_000 + "\n",
    "65-bit integer": "a: 36893488147419103232\n",
    "64-bit integer": "a: 18446744073709551615\n",
    "duplicate keys": "a: 1\na: 2\n",
    "duplicate keys, quoted": "a: 1\n'a': 2\n",
    "duplicate keys, flow": "{a: 1, a: 2}\n",
    "duplicate keys, deep": "x:\n  - {b: 1, c: 2, b: 3}\n",
    "python object tag": "a: !!python/object:os.system {}\n",
    "python name tag": "a: !!python/name:os.system\n",
    "python apply tag": "a: !!python/object/apply:os.system ['true']\n",
    "local tag": "a: !local 1\n",
    "verbatim tag": "a: !<tag:yaml.org,2002:str> 1\n",
    "map tag": "a: !!map {b: 1}\n",
    "set": "a: !!set {b, c}\n",
    "omap": "a: !!omap [b: 1]\n",
    "binary": "a: !!binary aGVsbG8=\n",
    "TAG directive": "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n",
    "YAML directive": "%YAML 1.1\n---\na: yes\n",
    "merge key": "base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n",
    "merge key list": "b1: &b1 {x: 1}\nb2: &b2 {y: 2}\nc:\n  <<: [*b1, *b2]\n",
    "merge key plain": "<<: 1\n",
    "merge key quoted": "'<<': 1\n",
    "integer key": "1: a\n",
    "null key": "~: a\n",
    "empty key": ": a\n",
    "bool key": "true: a\n",
    "float key": "1.5: a\n",
    "complex key": "? [complex, key]\n: value\n",
    "nested complex keys": "? " * 30 + "a\n",
    "NUL": "a: b\x00c\n",
    "lone surrogate escape": 'a: "\\udcff"\n',
    "lone surrogate escape, 32-bit": 'a: "\\U0000dcff"\n',
    "surrogate pair escape": 'a: "\\ud83d\\ude00"\n',
    "BOM": "\ufeffa: 1\n",
    "control character": "a: b\x07c\n",
    "unclosed flow": "a: [\n",
    "tab indentation": "a:\n\tb: 1\n",
    "empty": "",
    "only a comment": "# nothing\n",
    "empty documents": "---\n---\n...\n",
    "explicit document end": "a: 1\n...\n---\nb: 2\n",
    "document end without a document": "a: 1\n...\n...\n",
    "document end without a document, CR": "a: 1\r...\r...\r",
    "CR line breaks": "a: 1\rb:\r  - x\r",
    "NEL line break": "a: 1\x85b: 2\n",
    "LS line break": "a: 1\u2028b: 2\n",
    "block scalar": "a: |\n  text\n",
    "block scalar header comment": "a: |#c\n  text\n",
    "empty int": "a: !!int\n",
    "anchored bool": "a: &x true\nb: *x\n",
    "version far beyond": "%YAML 1.29\n---\na: 1\n",
    "timestamp": "a: 2026-11-24\nb: 2026-11-24 10:00:00\n",
    "impossible date": "a: 2026-02-30\n",
    "value key": "=: 1\n",
}
# Too slow for the careful path to compare with (it refuses it too, after minutes): declined here.
MANY_VALUES = "a: [" + ",".join(["1"] * (source.MAX_EXPANDED_NODES + 1)) + "]\n"


@pytest.mark.parametrize("text", list(ATTACKS.values()), ids=list(ATTACKS))
def test_an_attack_comes_out_as_on_the_careful_path(text):
    outcome(text)


@pytest.mark.parametrize(
    "name",
    ["deep flow nesting", "nesting one past the limit", "alias bomb", "recursive alias", "huge decimal", "65-bit integer",
     "duplicate keys", "duplicate keys, quoted", "python object tag", "merge key", "integer key", "complex key",
     "lone surrogate escape", "NUL", "reused anchor", "TAG directive", "YAML directive"],
)
def test_the_fast_path_declines_what_is_unusual(name):
    assert source.parse_fast(ATTACKS[name], P, "x.yaml") is None


def test_the_fast_path_declines_more_values_than_the_limit():
    assert source.parse_fast(MANY_VALUES, P, "x.yaml") is None
    assert source.parse_fast(MANY_VALUES.replace(",1" * 10 + "]", "]"), P, "x.yaml") is not None  # just below


def test_an_alias_shares_no_surprise():
    fast = outcome("base: &b {port: 1}\nx: *b\ny: [*b]\n")
    assert fast is not None and fast.documents[0].data == {"base": {"port": 1}, "x": {"port": 1}, "y": [{"port": 1}]}


# -- random documents from tricky fragments ---------------------------------------------------------

FRAGMENTS = [
    "a", "b", "'a'", '"a"', "1", "0x1f", "1.5", "true", "null", "~", "", "-", "<<", "2026-01-01", "&x", "*x", "!!str",
    "!t", "[", "]", "{", "}", ",", ":", ": ", "? ", "- ", "\n", "\n  ", "\n    ", " ", "#c", "---", "...", "|", ">",
    "'", '"', "\\", "é", "\t", "\r", "\r\n", "9" * 30, ".inf", "%YAML 1.2", "%TAG ! x:",
]


@settings(max_examples=2000, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40))
def test_random_fragments_read_alike(parts):
    outcome("".join(parts))


def test_dates_never_come_through_the_fast_path():
    # The careful path keeps unquoted dates as dates (so type errors name them); the fast one declines.
    assert source.parse_fast("a: 2026-11-24\n", P, "x.yaml") is None
    assert isinstance(source.parse("a: 2026-11-24\n", P, "x.yaml").documents[0].data["a"], datetime.date)


# -- whole loads: the same configuration or the same located errors, with or without the fast path --

VALID = """\
version: 1
provider: {name: wireguard, output_dir: wireguard, interface: wgsky0, address_pool: 100.64.0.0/10}
clusters:
  - {name: a, endpoint: "192.0.2.1:51820", subnets: &nets [10.1.0.0/16]}
  - name: b
    endpoint: 192.0.2.2:51820
    subnets: [10.2.0.0/16]
links:
  - {name: ab, source: a, target: b}
"""
LOADS = {
    "valid": VALID,
    "valid, with an alias": VALID.replace("[10.2.0.0/16]", "[10.2.0.0/16]\n    public_key: null"),
    "overlap through an alias": VALID.replace("subnets: [10.2.0.0/16]", "subnets: *nets"),
    "duplicate key": VALID + "links: []\n",
    "tagged value": VALID.replace("name: ab", "name: !!str ab"),
    "merge key": VALID.replace("  - name: b\n", "  - <<: {subnets: [10.3.0.0/16]}\n    name: b\n").replace(
        "    subnets: [10.2.0.0/16]\n", ""),
    "integer name": VALID.replace("name: ab", "name: 12"),
    "huge port": VALID.replace(":51820\"", ":" + "9" * 40 + "\""),
    "date": VALID.replace("name: ab", "name: 2026-01-01"),
    "bad subnet": VALID.replace("10.2.0.0/16", "10.2.0.1/16"),
} | {f"attack: {name}": text for name, text in ATTACKS.items()} | {
    f"case: {case['id']}": case["file"] for case in YAML(typ="safe").load((ROOT / "tests/config/validation_cases.yaml").read_text())
    if isinstance(case.get("file"), str)
}


def _load(path: Path):
    from skyplan.config.loader import load_config

    try:
        loaded = load_config(path, display="links.yaml")
    except ConfigError as exc:
        return "refused", [str(d) for d in exc.diagnostics]
    return "loaded", loaded.config.model_dump(), loaded.settings.model_dump(), [str(d) for d in loaded.diagnostics]


def test_a_load_ends_the_same_with_or_without_the_fast_path(tmp_path, monkeypatch):
    path = tmp_path / "links.yaml"
    for label, text in LOADS.items():
        path.write_text(text, errors="surrogatepass")
        with_fast = _load(path)
        with monkeypatch.context() as patched:
            patched.setattr(source, "parse_fast", lambda *args: None)
            careful = _load(path)
        assert with_fast == careful, label
    for label in ("valid", "valid, with an alias", "overlap through an alias"):
        assert source.parse_fast(LOADS[label], P, "x.yaml") is not None, label  # the fast path was tried
    path.write_text(LOADS["valid"])
    assert _load(path)[0] == "loaded"
    path.write_text(LOADS["overlap through an alias"])
    assert _load(path)[0] == "refused"  # found by the careful path, with its position


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nclusters: !!int\n", "YAML: cannot read '' as int"),
        ("%YAML 1.29\n---\nversion: 1\n", "YAML: version minor part can only be 2 or 1, got (1, 29)"),
        ("version: #c\n  2\n\n", RUAMEL_COMMENT_BUG),  # valid YAML: read fast, wrong: careful
    ],
    ids=["empty int", "unknown YAML version", "comment ruamel cannot read"],
)
def test_what_ruamel_trips_on_is_one_clean_error(workspace, skyplan, text, message):
    (workspace / "links.yaml").write_text(text)
    result = skyplan("validate")
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "internal error" not in result.output
    first = result.output.splitlines()[0]
    assert first.startswith("Error: links.yaml") and message in first, result.output
    assert sorted(p.name for p in workspace.iterdir()) == ["links.yaml"]


def test_a_valid_file_with_a_comment_ruamel_cannot_read_still_validates(workspace, skyplan):
    (workspace / "links.yaml").write_text("version: #c\n  1\n\n")
    result = skyplan("validate")
    assert result.exit_code == 0 and "Success!" in result.output, result.output
