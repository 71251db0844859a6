"""links.yaml written to trip the line reader (config/block_lines.py), as a pull request would.

The reader claims that whatever it accepts it reads exactly as the careful path (`source.parse`,
ruamel's round-trip loader, YAML 1.2) does, and that everything else goes the careful way, so that
errors keep their file, line, column and wording. Here the realistic files of the suite are
damaged the way hands and attackers damage them (indentation, comments, quotes, flow lists,
YAML's special scalars, duplicate keys, markers, odd characters) and each text is read by both:

- the data must be equal, types included (int, float, bool, None, str; list or dict; key order),
  and libyaml (the next fast path) must read it alike: no accepted text is one it refuses;
- a text the careful path refuses must never be accepted;
- the value limit cannot be slipped under: an accepted text is declined by a limit one below
  its own count of values, and nesting beyond the reader's depth is left to the careful path;
- a line built to almost match costs linear time;
- `skyplan validate` and `skyplan plan` end alike (exit code and output) with the line reader,
  without it (libyaml's events), and with no fast path at all.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyplan.config import block_lines, source
from skyplan.errors import ConfigError
from tests.config.test_block_lines import agrees, read
from tests.config.test_fast_parity import same
from tests.workspaces import BASIC

pytestmark = pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")

ROOT = Path(__file__).resolve().parents[2]
P = Path("x.yaml")
def values_in(node) -> int:
    """What source._check_expansion counts: every collection and scalar (keys are not counted)."""
    if isinstance(node, dict):
        return 1 + sum(values_in(v) for v in node.values())
    if isinstance(node, list):
        return 1 + sum(values_in(v) for v in node)
    return 1


def holds_against_both(text: str):
    """Assert the claim for `text`; return the reader's data (None when it declined)."""
    data = agrees(text)  # what the careful path reads alike (or the known ruamel comment bug)
    if data is None:
        return None
    libyaml = source._FastBuilder(text).documents()  # raises if libyaml refuses the text
    if libyaml is not None:
        assert len(libyaml) == 1 and same(data, libyaml[0]), repr(text[:300])
    # The value limit: one below this text's own count, the reader must leave it to the counting paths.
    assert read(text, values_in(data) - 1) is None, repr(text[:300])
    return data


# -- what the mutations draw from -------------------------------------------------------------------

SPECIAL = [
    "~", "null", "Null", "NULL", "nULL", "true", "True", "TRUE", "tRUE", "false", "yes", "Yes", "no", "on", "off", "y",
    "n", "Y", "N", "0x1F", "0x1f", "0x_1F", "-0x1F", "+0x1F", "0o17", "0O17", "012", "09", "08", "00", "0", "-0", "+0",
    "1_000", "_1", "1_", "1__0", "+1", "-1", "+_", "-_", "0b101", "0b", "0x", "0o", "0b_", "0x_", "0o_", ".inf", "-.inf",
    "+.inf", ".Inf", ".INF", ".iNf", ".nan", ".NaN", ".NAN", "-.nan", "-.5", "+.5", ".5", "-.", "+.", ".", "..", "...",
    "1e3", "1E3", "1e+3", "1e-3", "1.e3", ".5e3", ".5e+3", "1_0e1", "1e400", "-1e400", "0e0", "-0.0", "0.0", "1.",
    "1._", "._5", "1.5_", "1_000.5", "2026-11-24", "2026-1-1", "2026-11-24T10:00:00Z", "1:20", "190:20:30", "-1:2",
    "10.0.0.0/8", "fd00::/64", "192.0.2.1:51820", "a:b", "a::b", "a=b", "=", "a@b", "~x", "x~", "-", "--", "-a", "-1a",
    "+a", "/a", "a/", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "0x7fffffffffffffff", "0x8000000000000000", "1" * 40, "1" * 4400, "'q'", '"d"', "''", '""', "'a#b'", '"a#b"',
    "'a b'", "' a '", "'it''s'", '"\\t"', '"\\u00e9"', "'é'", "é", "'\xa0'", '"\xa0"', "a\xa0b", "'😀'", "😀", "'#'",
    "\"'\"", "'\"'", "a#b", "a #b", "x  #c", "a :b", "a:", "a: b", "[]", "[ ]", "[a]", "[a,b]", "[a, b]", "[ a , b ]",
    "[~]", "[null, 1, .5, true]", "['a', \"b\"]", "[a,]", "[,a]", "[[a]]", "{a: 1}", "{}", "[a: b]", "[a:b]",
    "[-1, .5]", "[-]", "[0x1F]", "[y, n]", '["a,b"]', "['a,b']", '["]"]', "['[']", "| x", "> x", "|", "!!str a",
    "!!int 1", "&a x", "*a", "%a", "@a", "`a", "?a", "? a", ":a", "<<", "{{ x }}",
]
KEYS = [
    "a", "b", "name", "on", "y", "n", "yes", "no", "true", "True", "null", "Null", "NULL", "~", "_", "_1", "a-b", "a_b",
    "-a", "1", "0x1", "k" * 128, "k" * 129, "'a'", '"a"', "a b", "a.b", "a/b", "é", "a:b", "<<", "?", "e", "inf", ".inf",
    "version", "provider", "clusters", "links", "name ", " name",
]
LINES = [
    "", " ", "    ", "#c", " # c", "  #", "# x: y", "---", "--- # x", "--- a: 1", "...", "  ...", "- x", "  - y", "x",
    "  z: 1", "a:", "  b:", "- - a", "-a", "-", "- ", "  -", "? a", ": b", "%YAML 1.2", "%TAG ! x", "  # é", "\xa0#",
    "- a: 1", "  - b: [c]", "name: dup", "  name: dup", "links:", "clusters: []", "- name: x\n  name: y",
]
TAILS = [" #c", "#c", "  # c", " ", "  ", ":", " :", ",", " x", "\xa0", " \xa0", "'", '"', "]", "[", " [a]", "-", " - ", " #'"]
INSERTS = list(" #:-'\",[]{}~é\xa0\\@&*!|>%?=.") + ["\t", "\r", "\ufeff", "\x85", "\u2028", "\x7f", "\x00"]


def _realistic_files() -> list[str]:
    files = [BASIC]
    for path in sorted((ROOT / "examples").glob("*/links.yaml")) + sorted((ROOT / "tests").rglob("*.yaml")):
        text = path.read_text(errors="surrogateescape")
        if len(text) < 20_000:
            files.append(text)
    return files


FILES = _realistic_files()
ACCEPTED = [text for text in FILES if read(text) is not None]


def _mutate(draw, text: str) -> str:
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        dash = "- " if body.startswith("- ") else ""
        body = body[len(dash) :]
        kind = draw(st.integers(0, 12))
        if kind == 0 and ":" in body:  # another value
            key = body.partition(":")[0]
            lines[i] = " " * indent + dash + key + ": " + draw(st.sampled_from(SPECIAL))
        elif kind == 1 and dash and ":" not in body:  # another item
            lines[i] = " " * indent + "- " + draw(st.sampled_from(SPECIAL))
        elif kind == 2 and ":" in body:  # another key
            lines[i] = " " * indent + dash + draw(st.sampled_from(KEYS)) + ":" + body.partition(":")[2]
        elif kind == 3:  # indentation in or out
            shift = draw(st.integers(-2, 4))
            lines[i] = " " * max(0, indent + shift) + dash + body
        elif kind == 4:
            lines.insert(i, draw(st.sampled_from(LINES)))
        elif kind == 5:
            lines[i] = line + draw(st.sampled_from(TAILS))
        elif kind == 6 and len(lines) > 1:
            del lines[i]
        elif kind == 7:
            lines.insert(i, line)  # a duplicate line: a duplicate key, most often
        elif kind == 8 and ": " in body:  # the value onto the next line, as a list or a mapping or text
            key, _, value = body.partition(": ")
            lines[i] = " " * indent + dash + key + ":" + draw(st.sampled_from(["", " # c", "   "]))
            deeper = indent + len(dash) + draw(st.sampled_from([0, 1, 2, 4]))
            lines.insert(i + 1, " " * deeper + draw(st.sampled_from(["", "- "])) + value)
        elif kind == 9 and ": " in body:  # quoted
            key, _, value = body.partition(": ")
            quote = draw(st.sampled_from(["'", '"']))
            lines[i] = " " * indent + dash + key + ": " + quote + value + quote
        elif kind == 10:  # flow list spacing
            lines[i] = line.replace("[", "[ ").replace("]", " ]") if draw(st.booleans()) else line.replace(", ", ",")
        elif kind == 11:
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(st.sampled_from(INSERTS)) + line[at:]
        else:
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + line[at + 1 :]
    out = "\n".join(lines)
    return draw(st.sampled_from(["", "---\n", "--- # c\n", "# c\n", "\ufeff", "\n\n"])) + out + draw(
        st.sampled_from(["", "", "\n", "\nlast:", "\nlast:\n- ", "\n  ", "\r\n", "\n..."])
    )


@st.composite
def damaged_files(draw) -> str:
    # Mostly files the reader accepts, so that what is compared is what it reads, not what it declines.
    text = draw(st.sampled_from(ACCEPTED if draw(st.integers(0, 4)) else FILES))
    for _ in range(draw(st.integers(1, 3))):
        text = _mutate(draw, text)
    return text


PLAIN_CHARACTERS = "0123456789._-+:eExXoObB~nulNUtrfaTFIi/=@"
QUOTED_CHARACTERS = "a #:é\xa0😀\u200b\u3000\ufffd\ue000,[]{}\\'\"-&*!|>"


@st.composite
def scalars_(draw) -> str:
    roll = draw(st.integers(0, 3))
    if roll == 0:
        return draw(st.sampled_from(SPECIAL))
    if roll == 1:
        return draw(st.text(PLAIN_CHARACTERS, min_size=1, max_size=8))
    if roll == 2:
        quote = draw(st.sampled_from(["'", '"']))
        body = draw(st.text(QUOTED_CHARACTERS, max_size=6)).replace(quote, "")
        return quote + (body.replace("\\", "") if quote == '"' else body) + quote
    items = draw(st.lists(st.one_of(st.text(PLAIN_CHARACTERS, min_size=1, max_size=5), st.sampled_from(SPECIAL)), max_size=4))
    separator = draw(st.sampled_from([", ", ",", " , "]))
    return "[" + draw(st.sampled_from(["", " "])) + separator.join(items) + draw(st.sampled_from(["", " "])) + "]"


@st.composite
def layouts(draw) -> str:
    """Block mappings and lists with an indentation step of its own at every level, compact
    lists, comments and blank lines anywhere."""
    out: list[str] = []

    def comment() -> str:
        return draw(st.sampled_from(["", "", "", " #c", "  # é", " #", "#x", " # ' \" ["]))

    def stray() -> None:
        if draw(st.integers(0, 9)) == 0:
            out.append(" " * draw(st.integers(0, 9)) + draw(st.sampled_from(["", "#c", "# x: y", "#- z"])))

    def key() -> str:
        return draw(st.one_of(st.sampled_from(KEYS[:20]), st.text("abxyz_-0", min_size=1, max_size=3)))

    def mapping(indent: int, depth: int, first: str | None = None) -> None:
        for i in range(draw(st.integers(1, 3))):
            stray()
            prefix = first if i == 0 and first is not None else " " * indent
            roll = draw(st.integers(0, 9))
            if depth < 4 and roll < 2:
                out.append(prefix + key() + ":" + comment())
                mapping(indent + draw(st.sampled_from([1, 2, 3, 4, 8])), depth + 1)
            elif depth < 4 and roll < 4:
                out.append(prefix + key() + ":" + comment())
                sequence(indent + draw(st.sampled_from([0, 0, 1, 2, 4])), depth + 1)
            elif roll < 5:
                out.append(prefix + key() + ":" + comment())
            else:
                out.append(prefix + key() + ": " + draw(scalars_()) + comment())

    def sequence(indent: int, depth: int) -> None:
        for _ in range(draw(st.integers(1, 3))):
            stray()
            if depth < 4 and draw(st.booleans()):
                mapping(indent + 2, depth + 1, first=" " * indent + "- ")
            else:
                out.append(" " * indent + "- " + draw(scalars_()) + comment())

    if draw(st.integers(0, 9)) == 0:
        out.append(draw(st.sampled_from(["---", "--- #c", "# head"])))
    mapping(0, 0)
    return "\n".join(out) + draw(st.sampled_from(["\n", "", "\n\n", "\n  \n"]))


FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(damaged_files())
def test_a_damaged_file_reads_as_on_the_careful_path_or_goes_there(text):
    holds_against_both(text)


@FUZZ
@given(layouts())
def test_a_generated_layout_reads_as_on_the_careful_path_or_goes_there(text):
    holds_against_both(text)


@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(scalars_(), st.sampled_from(KEYS))
def test_a_scalar_reads_alike_in_each_place_the_reader_takes_one(scalar, key):
    for text in (
        f"k: {scalar}\n", f"k: {scalar} # c\n", f"k: [{scalar}]\n", f"k: [a, {scalar}, {scalar}]\n",
        f"k:\n- {scalar}\n", f"k:\n  - {scalar}\n", f"- k: {scalar}\n", f"l:\n- k: {scalar}\n  m: {scalar}\n",
        f"{key}: {scalar}\n", f"l:\n- {key}: 1\n", f"{scalar}: 1\n",
    ):
        holds_against_both(text)


def test_the_comparisons_are_of_files_the_reader_reads():
    # The properties above would hold vacuously if the reader declined everything they draw.
    assert len(ACCEPTED) >= 10
    assert holds_against_both("a:\n- b: 0x1F\n  c: [~, 'x', -.5]\n  d:\n  - 1e3\ne:\n") == {
        "a": [{"b": 31, "c": [None, "x", -0.5], "d": [1000.0]}], "e": None
    }


# -- limits -----------------------------------------------------------------------------------------


def test_a_file_of_exactly_as_many_values_as_the_limit_is_read_and_one_more_is_not():
    # `l:` and two values a line is where the reader's estimate meets the real count.
    for entries in (1, 2, 10, 100):
        text = "l:\n" + "- k: v\n" * entries
        count = 2 + 2 * entries  # the root, the list, each entry and its value
        assert values_in(holds_against_both(text)) == count
        assert read(text, count) is not None
        assert read(text, count - 1) is None


def test_too_many_values_for_the_careful_path_are_refused_with_the_fast_paths_on(tmp_path, monkeypatch):
    monkeypatch.setattr(source, "MAX_EXPANDED_NODES", 40)
    text = BASIC + "".join(f"  - name: l{i}\n    source: us-west\n    target: eu-central\n" for i in range(3))
    assert read(text) is not None and values_in(read(text)) > 40
    outcomes = {mode: _skyplan(tmp_path, text, ["validate"], mode) for mode in MODES}
    assert outcomes["line reader"][0] == 1, outcomes
    assert "more than 40 values" in outcomes["line reader"][1]
    assert len(set(outcomes.values())) == 1, outcomes


def test_nesting_beyond_the_reader_is_left_to_the_careful_path():
    for depth in (20, 31, 32, 33, 34, 40, 70):
        text = "".join(" " * i + f"k{i}:\n" for i in range(depth)) + " " * depth + "v: 1\n"
        data = read(text)
        assert (data is None) == (depth > 32), depth  # the reader's own limit, far below the careful path's
        if data is not None:
            holds_against_both(text)
        elif depth > source.MAX_DEPTH:
            with pytest.raises(ConfigError) as refused:
                source.parse(text, P, "x.yaml")
            assert "nested too deeply" in str(refused.value.diagnostics[0])
    items = "k:\n" + "".join(" " * (2 * i) + "- a:\n" for i in range(40))
    assert read(items) is None


# -- time -------------------------------------------------------------------------------------------

SIZE = 200_000
PATHOLOGICAL = {
    "plain run": "k: " + "a" * SIZE,
    "colons": "k: " + "a:" * SIZE,
    "value ending in a colon": "k: " + "a" * SIZE + ":",
    "key run": "k" * SIZE + ":",
    "key run then more": "k" * SIZE + "x: 1",
    "keys of 127 and a dash": ("k" * 127 + "-") * (SIZE // 128) + ": 1",
    "dash then key characters": "- " + "k" * SIZE,
    "spaces then a letter": " " * SIZE + "x",
    "spaces before a hash": "k:" + " " * SIZE + "#",
    "spaces then a letter after a value": "k: v" + " " * SIZE + "x",
    "unclosed flow list": "k: [" + "a, " * SIZE,
    "unclosed flow list, no spaces": "k: [" + "a," * SIZE,
    "unclosed flow list of quotes": "k: [" + "'a', " * SIZE,
    "unclosed flow list of double quotes": "k: [" + '"a",' * SIZE,
    "flow list, spaces": "k: [" + " " * SIZE,
    "open quote": "k: '" + "a" * SIZE,
    "open double quote": 'k: "' + "a" * SIZE,
    "quotes": 'k: "' + '"' * SIZE,
    "minus signs": "k: " + "-" * SIZE,
    "minus and digits": "k: " + "-1" * SIZE,
    "digits": "k: " + "1" * SIZE,
    "digits then a dot": "k: " + "1" * SIZE + ".",
    "underscores in a float": "k: 1." + "_" * SIZE + "e",
    "underscores in an int": "k: 1" + "_" * SIZE + "x",
    "a timestamp's fraction": "k: 2026-01-01T1:00:00." + "0" * SIZE + "x",
    "a dotted float": "k: ." + "1" * SIZE + "e",
    "hashes": "k: v" + " #" * SIZE,
    "dashes and spaces": "- " * SIZE + "a",
    "dashes": "-" * SIZE,
    "key-value pairs on one line": "k: " + "a: " * SIZE,
    "equals signs": "k: " + "=" * SIZE,
    "at signs ending in a colon": "k: a" + "@" * SIZE + ":",
    "brackets": "k: " + "[" * SIZE,
    "closing brackets": "k: [" + "]" * SIZE,
    "tildes": "k: " + "~" * SIZE,
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_a_line_built_to_almost_match_costs_linear_time(name):
    text = PATHOLOGICAL[name] + "\n"
    started = time.perf_counter()
    read(text)
    elapsed = time.perf_counter() - started
    # Linear work on 200,000 characters takes milliseconds; quadratic work, minutes.
    assert elapsed < 1.0, f"{name}: {elapsed:.2f} s"


# -- the commands, with and without the reader ----------------------------------------------------

MODES = ("line reader", "libyaml", "careful")


@contextlib.contextmanager
def _mode(mode: str):
    read, fast = block_lines.read, source.parse_fast
    if mode == "libyaml":
        block_lines.read = lambda text, max_values: None
    elif mode == "careful":
        source.parse_fast = lambda text, path, display: None
    try:
        yield
    finally:
        block_lines.read, source.parse_fast = read, fast


def _skyplan(folder: Path, text: str, args: list[str], mode: str) -> tuple[int, str]:
    from skyplan.cli.skyplan_cmd import main

    # A fresh workspace each time: the cache of a valid file (.skyplan/cache) must not answer for the next mode.
    with tempfile.TemporaryDirectory(dir=folder) as where, contextlib.chdir(where), _mode(mode):
        Path(where, "links.yaml").write_text(text, encoding="utf-8", errors="surrogateescape")
        result = CliRunner().invoke(main, args, env={"SKYPLAN_BACKEND": None, "SKYPLAN_CONFIG": None, "NO_COLOR": "1"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output.replace(str(where), "<workspace>")


CONFIG_VALUES = [
    "51820", "0", "65535", "65536", "-1", "25", "1420", "0x20", "1e1", "1_0", "025", "+25", "25.0", "2.5e1", "'25'",
    "true", "yes", "True", "on", "false", "no", "~", "null", "''", "60s", "1m", "100.96.0.0/16", "us-west", "'us-west'",
    "[10.10.0.0/16]", "['10.10.0.0/16']", "[10.10.0.0/16, 10.11.0.0/16]", "[~]", "[]", "203.0.113.10:51820",
    "'203.0.113.10:51820'", "203.0.113.010:51820", "203.0.113.10:051820", "0.0.0.0:1", "[2001:db8::1]:51820", "y", "n",
    "wgsky0", "wg=sky", "a#b", "a #b", ".inf", ".nan", "-0.0", "0o17", "9223372036854775808", "2026-11-24",
]


@st.composite
def damaged_configurations(draw) -> str:
    text = draw(st.sampled_from([BASIC] + [t for t in ACCEPTED if "provider:" in t]))
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        body = lines[i].lstrip(" ")
        indent = " " * (len(lines[i]) - len(body))
        dash = "- " if body.startswith("- ") else ""
        body = body[len(dash) :]
        if ": " in body and draw(st.integers(0, 3)):
            lines[i] = indent + dash + body.partition(": ")[0] + ": " + draw(st.sampled_from(CONFIG_VALUES))
        else:
            lines = _mutate(draw, "\n".join(lines)).split("\n")
    return "\n".join(lines)


@settings(max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(damaged_configurations())
def test_validate_and_plan_end_alike_with_and_without_the_reader(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("modes")
    for args in (["validate"], ["plan"]):
        outcomes = {mode: _skyplan(folder, text, args, mode) for mode in MODES}
        assert len(set(outcomes.values())) == 1, (text, args, outcomes)


def test_a_valid_file_takes_the_reader_and_plans_alike(tmp_path):
    assert read(BASIC) is not None
    for args in (["validate"], ["plan"], ["plan", "--detailed-exitcode"]):
        outcomes = {mode: _skyplan(tmp_path, BASIC, args, mode) for mode in MODES}
        assert outcomes["line reader"][0] == (2 if "--detailed-exitcode" in args else 0)
        assert len(set(outcomes.values())) == 1, outcomes
