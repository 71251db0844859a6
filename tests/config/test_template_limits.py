"""Hostile templates, as a pull request would bring them: each ends fast with a located error.

A templated links.yaml, and the argv templates of on_change and status_command, run in CI on
code from pull requests. Every case runs `skyplan` (through CliRunner) in one subprocess with a
small time limit configured, so that the time limit itself is what stops a loop; the subprocess
timeout means a regression that hangs fails here instead of stopping the suite. The bounds on the time taken are
hang guards only, far above what these take.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TIME_LIMIT = 0.3
OUTPUT_LIMIT = 1_000_000
HANG_GUARD_SECONDS = 60.0

# `python -c DRIVER FOLDER…`: in each folder, `skyplan ARGS…` (ARGS from the folder's `args`
# file) through click's CliRunner with the limits made small; one JSON line of results each.
DRIVER = f"""
import dataclasses, json, os, sys, time
from click.testing import CliRunner
import skyplan.config.template as template
import skyplan_wireguard.hooks as hooks
template.LIMITS = dataclasses.replace(template.LIMITS, seconds={TIME_LIMIT}, output_chars={OUTPUT_LIMIT})
hooks.LIMITS = dataclasses.replace(hooks.LIMITS, seconds={TIME_LIMIT})
from skyplan.cli.skyplan_cmd import main
for folder in sys.argv[1:]:
    os.chdir(folder)
    args = open("args").read().split()
    os.remove("args")
    started = time.monotonic()
    result = CliRunner().invoke(main, args)
    seconds = time.monotonic() - started
    crashed = repr(result.exception) if result.exception and not isinstance(result.exception, SystemExit) else None
    print(json.dumps(dict(folder=folder, exit_code=result.exit_code, stderr=result.stderr, output=result.output,
                          seconds=seconds, crashed=crashed, files=sorted(os.listdir(".")))), flush=True)
"""

HEADER = "version: 1\nclusters:\n"  # lines 1-2; a hostile line 3 follows


def run_all(folders: list[Path]) -> dict[str, dict]:
    """Run every prepared folder in one subprocess; its timeout is the hang guard for them all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYPLAN_")} | {"NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, folders)], env=env, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS * 4
    )
    assert done.returncode == 0, done.stderr
    return {Path(record["folder"]).name: record for record in map(json.loads, done.stdout.splitlines())}


def assert_refused(record: dict, first_line: str) -> None:
    """Exit 1, no traceback, and `first_line` first on stderr (or its start, when it ends in "…")."""
    assert record["crashed"] is None, record["crashed"]
    assert record["exit_code"] == 1, record["output"]
    assert "Traceback" not in record["output"] and "internal error" not in record["output"], record["output"]
    first = record["stderr"].splitlines()[0]
    assert first.startswith(first_line[:-1]) if first_line.endswith("…") else first == first_line, record["stderr"]
    assert record["seconds"] < HANG_GUARD_SECONDS, f"took {record['seconds']:.1f}s"


LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
TOOK_LONG = f"template: took longer than {TIME_LIMIT:g} seconds (the time limit)"

HOSTILE_TEMPLATES = [
    pytest.param("{{ 9**(9**9) }}", "template: an integer of more than 4096 bits (a power)", id="huge-power"),
    pytest.param("{{ (9**99) * (9**99) * (9**999) * (9**999) * (9**999) }}", "template: an integer of more than 4096 bits (a product)", id="huge-product"),
    pytest.param(LOOPS, TOOK_LONG, id="nested-ranges"),
    pytest.param(
        "{% set l = range(100000)|list %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}", TOOK_LONG, id="nested-lists"
    ),
    pytest.param(
        "{% macro m(d) %}{% if d < 40 %}{{ m(d + 1) }}{{ m(d + 1) }}{% endif %}{% endmacro %}{{ m(0) }}",
        TOOK_LONG,
        id="branching-macro",
    ),
    pytest.param(
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "template: calls nested more than 64 deep (a macro calling itself?)",
        id="recursive-macro",
    ),
    pytest.param(
        '{% include "links.yaml.j2" %}',
        "template: includes or imports nested more than 64 deep (a template including itself?)",
        id="self-include",
    ),
    pytest.param(
        '{% import "links.yaml.j2" as me %}',
        "template: includes or imports nested more than 64 deep (a template including itself?)",
        id="self-import",
    ),
    pytest.param(
        "{% set l = [] %}{% set _ = l.append(l) %}{% for x in l recursive %}{{ loop(x) }}{% endfor %}",
        "template: calls nested more than 64 deep (a macro calling itself?)",
        id="recursive-loop",
    ),
    pytest.param(
        "{{ 'x' * 10**10 }}", "template: a repeated str would be 10000000000 characters long; the limit is 1000000", id="huge-string"
    ),
    pytest.param(
        "{% set s = 'x' * 500000 %}{% set s = s ~ s %}{% set s = s ~ s %}{{ s }}",
        "template: a joined string would be 2000000 characters long; the limit is 1000000",
        id="doubling-concatenation",
    ),
    pytest.param(
        "{{ [['x' * 1000] * 1000] * 1000 }}", "template: printing a value would be …", id="printing-a-nested-list"
    ),
    pytest.param("{{ '%999999999999s' % 'x' }}", "template: a formatted field would be 999999999999 characters long; the limit is 1000000", id="printf-width"),
    pytest.param("{{ '{:>999999999999}'.format('x') }}", "template: a formatted field would be 999999999999 characters long; the limit is 1000000", id="format-width"),
    pytest.param("{{ 'x'|center(10**12) }}", "template: a centred string would be 1000000000000 characters long; the limit is 1000000", id="center"),
    pytest.param("{{ 'x'.ljust(10**12) }}", "template: str.ljust would be 1000000000000 characters long; the limit is 1000000", id="ljust"),
    pytest.param(
        "{{ range(100000)|join('x' * 1000) }}", "template: a joined string would be 99999000 characters long; the limit is 1000000", id="join"
    ),
    pytest.param(
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
        "template: output longer than 1000000 characters (the output limit)",
        id="output-size",
    ),
    pytest.param("{{ lipsum(10**7) }}", "template: 'lipsum' is undefined (pass it with --var, --var-file or SKYPLAN_VAR_NAME)", id="no-lipsum"),
    pytest.param("{{ ''.__class__.__mro__ }}", "template: not allowed: access to attribute '__class__' of 'str' object is unsafe.", id="python-internals"),
]


HOOK_APPLY = "version: 1\nprovider:\n  name: wireguard\n  on_change: [sh, -c, 'touch \"$0.ran\"', \"{hook}\"]\n" + (
    'clusters:\n  - {name: a, endpoint: "192.0.2.1:51820"}\n  - {name: b, endpoint: "192.0.2.2:51820"}\n'
    "links:\n  - {name: ab, source: a, target: b}\n"
)
# Validation renders hook templates with stand-in values: the first fails there, before apply
# writes anything; the second starts its loop for cluster b alone, at apply.
HOOK_FOR_EVERY_CLUSTER = LOOPS + "{{ cluster }}"
HOOK_FOR_CLUSTER_B = "{% if cluster == 'b' %}" + LOOPS + "{% endif %}{{ cluster }}"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    folders = []
    for index, case in enumerate(HOSTILE_TEMPLATES):
        folder = tmp_path_factory.mktemp(f"template-{index}-")
        (folder / "links.yaml.j2").write_text(HEADER + case.values[0] + "\n")
        (folder / "args").write_text("plan links.yaml.j2")
        folders.append(folder)
    for name, hook in (("hook-every", HOOK_FOR_EVERY_CLUSTER), ("hook-b", HOOK_FOR_CLUSTER_B)):
        folder = tmp_path_factory.mktemp(name)
        (folder / "links.yaml").write_text(HOOK_APPLY.replace("{hook}", hook))
        (folder / "args").write_text("apply --auto-approve")
        folders.append(folder)
    return run_all(folders)


def _record(results: dict[str, dict], prefix: str) -> dict:
    (record,) = [r for name, r in results.items() if name.startswith(prefix)]
    return record


@pytest.mark.parametrize(("index", "case"), list(enumerate(HOSTILE_TEMPLATES)), ids=[c.id for c in HOSTILE_TEMPLATES])
def test_a_hostile_template_fails_fast_at_its_line_and_writes_nothing(results, index, case):
    record = _record(results, f"template-{index}-")
    assert_refused(record, f"Error: links.yaml.j2:3:1: {case.values[1]}")
    assert record["files"] == ["links.yaml.j2"], "a refused template led to files written"


def test_a_loop_that_never_ends_in_a_hook_template_fails_validation_before_anything_is_written(results):
    record = _record(results, "hook-every")
    assert_refused(record, f"Error: links.yaml:4:14: provider.on_change: argument 3: {TOOK_LONG}")
    assert record["files"] == ["links.yaml"]


def test_a_hook_template_that_loops_for_one_cluster_only_fails_that_cluster_at_apply(results):
    record = _record(results, "hook-b")
    assert record["crashed"] is None and record["exit_code"] == 1, record["output"]
    assert "Traceback" not in record["output"]
    assert f"on_change for cluster 'b': argument 3: {TOOK_LONG}" in record["output"]
    assert record["seconds"] < HANG_GUARD_SECONDS
    assert "a.ran" in record["files"] and "b.ran" not in record["files"], "b's hook ran, or a's did not"
