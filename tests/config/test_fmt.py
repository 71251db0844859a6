"""skyplan fmt: canonical layout with comments kept; --check, --diff; safe, atomic writes."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyplan.cli.skyplan_cmd import main
from skyplan.config import fmt as fmt_module
from skyplan.config.fmt import format_text
from skyplan.config.loader import load_config
from skyplan.errors import ConfigError, FormatError
from skyplan.sdk import provider_class

CASES = Path(__file__).parent / "fmt_cases"
CASE_NAMES = sorted(path.name.removesuffix(".in.yaml") for path in CASES.glob("*.in.yaml"))
# Cases whose input is a valid links.yaml, so the loader can tell whether formatting changed it.
VALID_CASES = ["comments", "flow_lists", "indentation", "key_order", "manifests", "modeline", "topologies"]
EXAMPLE = Path(__file__).parents[2] / "examples" / "basic" / "links.yaml"

UNFORMATTED = """\
clusters:
- endpoint: 203.0.113.10:51820   # public address
  name: us-west
version: 1
"""
FORMATTED = """\
version: 1
clusters:
  - name: us-west
    endpoint: 203.0.113.10:51820   # public address
"""


def settings_fields(name: str) -> tuple[str, ...]:
    return tuple(provider_class(name).settings_model.model_fields)


def fmt(text: str) -> str:
    return format_text(text, provider_fields=settings_fields)


# -- the layout: cases as data ------------------------------------------------------------------


def test_there_are_cases():
    assert len(CASE_NAMES) >= 8
    assert set(VALID_CASES) <= set(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(name):
    before = (CASES / f"{name}.in.yaml").read_text()
    expected = (CASES / f"{name}.out.yaml").read_text()
    assert before != expected, "a case whose input is already canonical tests nothing"
    assert fmt(before) == expected


@pytest.mark.parametrize("name", CASE_NAMES)
def test_formatting_twice_changes_nothing(name):
    once = fmt((CASES / f"{name}.in.yaml").read_text())
    assert fmt(once) == once


@pytest.mark.parametrize("name", CASE_NAMES)
def test_output_has_no_trailing_whitespace_and_one_final_newline(name):
    out = fmt((CASES / f"{name}.in.yaml").read_text())
    assert all(line == line.rstrip() for line in out.split("\n"))
    assert out.endswith("\n") and not out.endswith("\n\n")


@pytest.mark.parametrize("name", VALID_CASES)
def test_formatting_keeps_the_meaning(name, tmp_path):
    before = tmp_path / "before.yaml"
    after = tmp_path / "after.yaml"
    before.write_text((CASES / f"{name}.in.yaml").read_text())
    after.write_text(fmt(before.read_text()))
    assert load_config(after).config == load_config(before).config


def test_bundled_example_is_canonical():
    text = EXAMPLE.read_text()
    assert text.startswith("# ")  # it has comments to keep
    assert fmt(text) == text


def test_windows_line_endings_become_unix_ones():
    assert fmt(FORMATTED.replace("\n", "\r\n")) == FORMATTED


def test_blank_lines_collapse_and_leave_the_ends():
    assert fmt("\n\nversion: 1\n\n\n\nlinks: []\n\n\n") == "version: 1\n\nlinks: []\n"


def test_a_file_of_comments_stays_as_it_is():
    assert fmt("# nothing yet\n\n# soon\n") == "# nothing yet\n\n# soon\n"
    assert fmt("") == ""


def test_invalid_yaml_is_reported_with_its_position():
    with pytest.raises(ConfigError) as raised:
        format_text("version: 1\nclusters:\n  - name: a\n   endpoint: x\n", display="links.yaml")
    (diagnostic,) = raised.value.diagnostics
    assert (diagnostic.file, diagnostic.line, diagnostic.column) == ("links.yaml", 4, 4)
    assert diagnostic.message.startswith("YAML: ")


def test_duplicate_keys_are_reported_like_the_loader_does():
    with pytest.raises(ConfigError) as raised:
        format_text("version: 1\nversion: 1\n", display="links.yaml")
    assert raised.value.diagnostics[0].line == 2


def test_an_alias_bomb_is_refused_before_any_work():
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(ConfigError) as raised:
        format_text("\n".join(levels) + "\n", display="links.yaml")
    assert "expands to more than" in raised.value.diagnostics[0].message


def test_formatting_that_would_lose_a_comment_is_refused(monkeypatch):
    monkeypatch.setattr(fmt_module, "_render", lambda block, column: [])
    with pytest.raises(FormatError, match="lose or change a comment"):
        fmt("# header\n" + UNFORMATTED)


def test_formatting_that_would_change_the_data_is_refused(monkeypatch):
    dump = fmt_module._dump
    monkeypatch.setattr(fmt_module, "_dump", lambda yaml, tree: dump(yaml, tree).replace("us-west", "us-east"))
    with pytest.raises(FormatError, match="change the data"):
        fmt(UNFORMATTED)


# -- any file: formatting is stable and keeps data and comments ----------------------------------


def _random_file(rnd: random.Random) -> str:
    """A links.yaml in a random layout, key order and style, with comments and blank lines strewn."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def mapping(pairs):
        rnd.shuffle(pairs)
        node = CommentedMap(pairs)
        if rnd.random() < 0.15:
            node.fa.set_flow_style()
        return node

    def values(items):
        node = CommentedSeq(items)
        if rnd.random() < 0.5:
            node.fa.set_flow_style()
        return node

    def document():
        top = [("version", 1)]
        settings_keys = rnd.sample(["interface", "mtu", "on_change", "listen_port", "output_dir"], rnd.randint(0, 4))
        top.append(("provider", mapping([("name", "wireguard")] + [(k, rnd.choice(["x", 5, values(["a", "b c"])])) for k in settings_keys])))
        clusters = []
        for i in range(rnd.randint(0, 3)):
            fields = [("name", f"c{i}"), ("endpoint", f"192.0.2.{i}:51820"), ("subnets", values([f"10.{i}.{j}.0/24" for j in range(rnd.randint(0, 4))]))]
            if rnd.random() < 0.3:
                fields.append(("zone", mapping([("a", 1), ("b", [1, 2])])))
            clusters.append(mapping(fields))
        top.append(("clusters", CommentedSeq(clusters)))
        links = [mapping([("name", f"l{i}"), ("source", "c0"), ("target", "c1")]) for i in range(rnd.randint(0, 3))]
        top.append(("links", CommentedSeq(links)))
        return mapping(top)

    def manifest():
        return mapping([("kind", "Link"), ("metadata", mapping([("name", "m")])), ("spec", mapping([("source_cluster", "c0"), ("target_cluster", "c1")]))])

    def render(tree):
        yaml = YAML()
        yaml.indent(mapping=rnd.choice([2, 4]), sequence=rnd.choice([2, 4]), offset=rnd.choice([0, 2]))
        stream = io.StringIO()
        yaml.dump(tree, stream)
        out = []
        for line in stream.getvalue().splitlines():
            while rnd.random() < 0.25:
                out.append(rnd.choice(["", " " * rnd.randint(0, 8) + f"# c{rnd.randint(0, 99)}"]))
            if rnd.random() < 0.2 and not line.rstrip().endswith(("[", "{", ",")):
                line += " " * rnd.randint(1, 4) + f"# e{rnd.randint(0, 99)}"
            out.append(line)
        return "\n".join(out) + "\n"

    return "---\n".join([render(document())] + [render(manifest()) for _ in range(rnd.choice([0, 0, 1, 2]))])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_any_layout_formats_stably(seed):
    text = _random_file(random.Random(seed))
    try:
        once = fmt(text)
    except ConfigError:  # the generator can write YAML that does not parse; that is not fmt's case
        return
    # format_text itself refuses output whose data or comments differ from the input's.
    assert fmt(once) == once


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def test_fmt_rewrites_links_yaml_by_default(workspace):
    (workspace / "links.yaml").write_text(UNFORMATTED)
    result = run("fmt")
    assert result.exit_code == 0, result.output
    assert result.stdout == "links.yaml\n"
    assert (workspace / "links.yaml").read_text() == FORMATTED


def test_fmt_of_a_canonical_file_prints_and_changes_nothing(workspace):
    path = workspace / "links.yaml"
    path.write_text(FORMATTED)
    before = path.stat()
    result = run("fmt")
    assert (result.exit_code, result.stdout) == (0, "")
    assert path.stat().st_ino == before.st_ino  # not even rewritten with the same text


def test_fmt_keeps_the_file_mode(workspace):
    path = workspace / "links.yaml"
    path.write_text(UNFORMATTED)
    path.chmod(0o640)
    assert run("fmt").exit_code == 0
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.read_text() == FORMATTED
    assert [p.name for p in workspace.iterdir()] == ["links.yaml"]  # no temporary file left


def test_fmt_writes_through_a_symlink(workspace):
    (workspace / "real.yaml").write_text(UNFORMATTED)
    (workspace / "links.yaml").symlink_to("real.yaml")
    assert run("fmt").exit_code == 0
    assert (workspace / "links.yaml").is_symlink()
    assert (workspace / "real.yaml").read_text() == FORMATTED


def test_check_passes_on_a_canonical_file(workspace):
    (workspace / "links.yaml").write_text(FORMATTED)
    result = run("fmt", "--check")
    assert (result.exit_code, result.stdout) == (0, "")


def test_check_fails_and_writes_nothing(workspace):
    path = workspace / "links.yaml"
    path.write_text(UNFORMATTED)
    mtime = path.stat().st_mtime_ns
    result = run("fmt", "--check")
    assert result.exit_code == 1
    assert result.stdout == "links.yaml\n"
    assert path.read_text() == UNFORMATTED
    assert path.stat().st_mtime_ns == mtime


EXPECTED_DIFF = """\
--- a/links.yaml
+++ b/links.yaml
@@ -1,4 +1,4 @@
+version: 1
 clusters:
-- endpoint: 203.0.113.10:51820   # public address
-  name: us-west
-version: 1
+  - name: us-west
+    endpoint: 203.0.113.10:51820   # public address
"""


def test_diff_prints_a_unified_diff_and_writes(workspace):
    (workspace / "links.yaml").write_text(UNFORMATTED)
    result = run("fmt", "--diff")
    assert result.exit_code == 0
    assert result.stdout == "links.yaml\n" + EXPECTED_DIFF
    assert (workspace / "links.yaml").read_text() == FORMATTED


def test_check_with_diff_prints_the_diff_exits_1_and_writes_nothing(workspace):
    (workspace / "links.yaml").write_text(UNFORMATTED)
    result = run("fmt", "--check", "--diff")
    assert result.exit_code == 1
    assert result.stdout == "links.yaml\n" + EXPECTED_DIFF
    assert (workspace / "links.yaml").read_text() == UNFORMATTED


def test_diff_marks_a_missing_final_newline(workspace):
    (workspace / "links.yaml").write_text("version: 1")
    result = run("fmt", "--check", "--diff")
    assert result.exit_code == 1
    assert "-version: 1\n\\ No newline at end of file\n+version: 1\n" in result.stdout


def test_invalid_yaml_is_one_located_error_and_nothing_is_written(workspace):
    path = workspace / "links.yaml"
    bad = "version: 1\nclusters:\n  - name: a\n   endpoint: x\n"
    path.write_text(bad)
    result = run("fmt")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: links.yaml:4:4: YAML: ")
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output
    assert path.read_text() == bad


def test_a_refused_rewrite_is_one_error_and_nothing_is_written(workspace, monkeypatch):
    monkeypatch.setattr(fmt_module, "_render", lambda block, column: [])
    path = workspace / "links.yaml"
    path.write_text("# header\n" + UNFORMATTED)
    result = run("fmt")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: links.yaml: formatting would lose or change a comment")
    assert path.read_text() == "# header\n" + UNFORMATTED


def test_a_missing_file_is_an_error(workspace):
    result = run("fmt", "missing.yaml")
    assert result.exit_code == 1
    assert result.stderr == "Error: missing.yaml: no such file\n"


def test_a_named_file(workspace):
    (workspace / "sub").mkdir()
    (workspace / "sub" / "net.yaml").write_text(UNFORMATTED)
    result = run("fmt", "sub/net.yaml", "--check", "--diff")
    assert result.exit_code == 1
    assert "--- a/sub/net.yaml\n+++ b/sub/net.yaml\n" in result.stdout


def test_standard_input_to_standard_output(workspace):
    result = run("fmt", "-", input=UNFORMATTED)
    assert (result.exit_code, result.stdout) == (0, FORMATTED)
    assert list(workspace.iterdir()) == []
    assert run("fmt", "-", "--check", input=UNFORMATTED).exit_code == 1
    assert run("fmt", "-", "--check", input=FORMATTED).exit_code == 0


def test_the_bundled_example_passes_check():
    result = run("fmt", os.fspath(EXAMPLE), "--check")
    assert (result.exit_code, result.stdout) == (0, "")
