"""The limits of links.yaml loading: huge, deep and self-multiplying files are refused, fast.

Each file goes through a real `python -m skyplan validate`, so that a regression that makes one of
them hang fails on the subprocess timeout instead of stopping the suite. The time taken is
printed (run with -s); the check is on the message, which says which limit refused the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyplan.config.source import MAX_EXPANDED_NODES, MAX_FILE_BYTES

# Far above the tenths of a second these take, far below a hang: only a gross regression fails.
GENEROUS_SECONDS = 5.0


def validate(workspace: Path, content: bytes) -> tuple[subprocess.CompletedProcess, float]:
    (workspace / "links.yaml").write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYPLAN_")} | {"NO_COLOR": "1"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "skyplan", "validate"], cwd=workspace, env=env, capture_output=True, text=True, timeout=120
    )
    return done, time.monotonic() - started


def assert_refused(workspace: Path, content: bytes, message: str, label: str) -> str:
    done, seconds = validate(workspace, content)
    print(f"{label}: {len(content)} bytes refused in {seconds:.2f}s")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "unexpected internal error" not in done.stderr, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("Error: links.yaml:") and first.endswith(message), done.stderr
    assert sorted(p.name for p in workspace.iterdir()) == ["links.yaml"], "a refused file led to files written"
    assert seconds < GENEROUS_SECONDS, f"{label} took {seconds:.1f}s to refuse"
    return first


def alias_bomb(levels: int, width: int) -> bytes:
    lines = ["version: 1", 'lol0: &a0 ["lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"clusters: *a{levels}")
    return ("\n".join(lines) + "\n").encode()


def test_billion_laughs_is_refused_without_expanding_it(workspace):
    first = assert_refused(
        workspace,
        alias_bomb(9, 9),
        f"document expands to more than {MAX_EXPANDED_NODES} values through YAML aliases; refusing it",
        "alias bomb 9x9",
    )
    assert first.startswith("Error: links.yaml:1:1: ")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(workspace):
    cluster = b'  - {name: c%07d, endpoint: "192.0.2.1:51820", subnets: []}\n'
    body = b"version: 1\nclusters:\n"
    count = 40 * 1024 * 1024 // len(cluster % 0) + 1
    content = body + b"".join(cluster % i for i in range(count))
    assert len(content) > 40 * 1024 * 1024
    assert_refused(workspace, content, f"file is {len(content)} bytes; the limit is {MAX_FILE_BYTES}", "40 MB file")


def test_a_file_without_a_size_is_read_only_up_to_the_limit(workspace):
    # /dev/zero reports size 0 and never ends: it was read until memory ran out (MemoryError).
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYPLAN_")} | {"NO_COLOR": "1"}
    started = time.monotonic()
    command = [sys.executable, "-m", "skyplan", "validate", "/dev/zero"]
    done = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=120)
    print(f"/dev/zero refused in {time.monotonic() - started:.2f}s")
    assert done.returncode == 1
    assert done.stderr == f"Error: /dev/zero: file is more than {MAX_FILE_BYTES} bytes, the limit\n"
    assert list(workspace.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "where"),
    [
        pytest.param(b"version: 1\nclusters: " + b"[" * 5000 + b"]" * 5000 + b"\n", "2:75", id="flow-lists"),
        pytest.param(b"version: 1\nclusters: " + b"{a: " * 5000 + b"1" + b"}" * 5000 + b"\n", "2:267", id="flow-mappings"),
        pytest.param(b"version: 1\nlinks: " + b"[" * 5000 + b"\n", "2:72", id="unclosed-lists"),
        pytest.param(b"version: 1\nlinks:\n" + b"- " * 5000 + b"a\n", "3:129", id="block-sequences"),
        pytest.param(
            b"version: 1\nprovider:\n" + b"".join(b" " * i + b"k:\n" for i in range(1, 500)) + b" " * 500 + b"v: 1\n",
            "66:66",
            id="block-mappings",
        ),
    ],
)
def test_thousands_of_levels_are_refused_where_the_limit_is_crossed(workspace, content, where):
    first = assert_refused(workspace, content, "YAML: nested too deeply (more than 64 levels)", "deep nesting")
    assert first.startswith(f"Error: links.yaml:{where}: "), first


@pytest.mark.parametrize(
    ("content", "where"),
    [
        pytest.param(b"version: 1\nclusters: &c [*c]\n", "2:15", id="list"),
        pytest.param(b"version: 1\nprovider: &p {name: wireguard, x: *p}\n", "2:35", id="mapping"),
        pytest.param(
            b'version: 1\nclusters:\n  - {name: a, endpoint: "192.0.2.1:1"}\n  - {name: b, endpoint: "192.0.2.2:1"}\n'
            b"---\nkind: Link\nmetadata: {name: ab}\nspec: {source_cluster: a, target_cluster: b}\nstatus: &s [*s]\n",
            "9:13",
            id="manifest-status",  # was read as null and accepted
        ),
        pytest.param(b"&doc [*doc]\n", "1:7", id="document"),
    ],
)
def test_a_recursive_alias_is_refused_where_it_stands(workspace, content, where):
    first = assert_refused(workspace, content, "(a recursive structure)", "recursive alias")
    assert first.startswith(f"Error: links.yaml:{where}: YAML: alias *"), first


def test_keys_nested_in_keys_are_refused_at_once(workspace):
    # ruamel hashes nested keys over and over: 16 levels of "? " took a minute, 40 would take ages.
    content = b"version: 1\n" + b"? " * 40 + b"a\n"
    first = assert_refused(workspace, content, "a key must be a plain value, not a list or mapping", "? ? ? a")
    assert first.startswith("Error: links.yaml:2:3: "), first


def test_an_integer_of_thousands_of_digits_is_refused(workspace):
    # Python refuses to convert more than 4300 digits; ruamel let that ValueError escape.
    content = b"version: 1\nprovider: {listen_port: " + b"9" * 5000 + b"}\n"
    first = assert_refused(workspace, content, "YAML: cannot read '99999999999999999999'… (5000 characters) as int", "5000 digits")
    assert first.startswith("Error: links.yaml:2:25: "), first


HUGE_HEX = b"0x" + b"f" * 4000  # no conversion limit for hex, but 4817 digits when printed


@pytest.mark.parametrize(
    ("content", "where"),
    [
        pytest.param(b"version: 1\nprovider: {listen_port: " + HUGE_HEX + b"}\n", "2:25", id="value"),
        pytest.param(b"version: " + HUGE_HEX + b"\n", "1:10", id="version"),
        pytest.param(b"kind: " + HUGE_HEX + b"\n", "1:7", id="kind"),
        pytest.param(b"version: 1\n? " + HUGE_HEX + b"\n: 1\n", "2:3", id="key"),
    ],
)
def test_an_integer_too_large_to_print_is_refused(workspace, content, where):
    # Messages that quote such a value failed with "Exceeds the limit (4300 digits)".
    message = "YAML: cannot read '0xffffffffffffffffff'… (4002 characters) as int: more than 64 bits"
    first = assert_refused(workspace, content, message, "huge hex integer")
    assert first.startswith(f"Error: links.yaml:{where}: "), first

