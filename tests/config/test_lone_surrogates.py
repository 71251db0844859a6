"""Lone surrogates ("\\udcff"): no character, yet Python makes them from odd bytes and escapes.

A YAML "\\udcff" escape, a command-line argument or environment variable that is not UTF-8, a
folder name that is not UTF-8: each passed validation, then plan or apply failed with an internal
error when the text was hashed or written to a state, a lock or a plan. Each is now a located
error, exit 1, and nothing is written. (Values in links.yaml itself: validation_cases.yaml.)
"""

from __future__ import annotations

import os

import pytest

from tests.workspaces import links_yaml

TEMPLATE = 'version: 1\nprovider:\n  name: wireguard\n  output_dir: "{{ out }}"\nclusters:\n  - {name: a, endpoint: "192.0.2.1:51820"}\n'
RENDERED_ERROR = (
    "Error: links.yaml.j2 (rendered):4:17: the rendered text holds a lone surrogate (\\udcff), which is not a "
    "character; it comes from a variable or a template string: give the text itself, in UTF-8"
)


def assert_refused(result, first_line: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.output.splitlines()[0] == first_line, result.output


@pytest.mark.parametrize(
    "setting",
    [
        'output_dir: "wireguard\\udcff"',
        'on_change: ["\\udcff"]',
        'on_change: [echo, "{{ cluster }}\\udcff"]',
    ],
)
def test_apply_refuses_a_setting_holding_a_surrogate_before_writing_anything(workspace, skyplan, setting):
    (workspace / "links.yaml").write_text(links_yaml([("a", "192.0.2.1:51820", [])], [], provider=setting))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("Error: links.yaml:4:") and "holds a lone surrogate (\\udcff)" in first, result.output
    assert sorted(p.name for p in workspace.iterdir()) == ["links.yaml"]


@pytest.mark.parametrize("given", ["--var", "environment", "--var-file"])
def test_a_template_variable_holding_a_surrogate_is_refused_at_its_place(workspace, skyplan, given):
    (workspace / "links.yaml.j2").write_text(TEMPLATE)
    # What Python makes of the byte 0xff in an argument or a variable that is not UTF-8.
    args, env = ["plan", "links.yaml.j2"], {}
    if given == "--var":
        args += ["--var", "out=w\udcff"]
    elif given == "environment":
        env = {"SKYPLAN_VAR_out": "w\udcff"}
    else:
        (workspace / "vars.yaml").write_text('out: "w\\udcff"\n')
        args += ["--var-file", "vars.yaml"]
    assert_refused(skyplan(*args, env=env), RENDERED_ERROR)
    assert not (workspace / ".skyplan").exists()


def test_a_workspace_whose_path_is_not_utf8_is_refused_by_name(workspace, skyplan, monkeypatch):
    folder = workspace / os.fsdecode(b"team-\xff")
    folder.mkdir()
    (folder / "links.yaml").write_text(links_yaml([("a", "192.0.2.1:51820", []), ("b", "192.0.2.2:51820", [])], [("ab", "a", "b")]))
    monkeypatch.chdir(folder)
    expected = f"Error: links.yaml: the path '{workspace}/team-\\udcff/links.yaml' is not valid UTF-8, which skyplan needs to record it: rename it"
    for command in (["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"]):
        assert_refused(skyplan(*command), expected)
    assert sorted(p.name for p in folder.iterdir()) == ["links.yaml"], "a lock, state or config was written"
