"""One currency for problems: an error carries diagnostics, and render/errors.py prints each."""

from __future__ import annotations

import re
from pathlib import Path

import skyplan
from skyplan.config.diagnostics import Diagnostic
from skyplan.errors import ConfigError, PlanError, SkyplanError, StateError
from skyplan.render.errors import render_failure


def test_an_error_made_of_a_message_is_one_diagnostic():
    error = StateError("no state here")
    assert [d.message for d in error.diagnostics] == ["no state here"]
    assert render_failure(error) == "Error: no state here\n"
    assert render_failure(error, file="a.yaml") == "Error: a.yaml: no state here\n"


def test_several_problems_are_printed_a_line_each_and_never_joined():
    error = PlanError(diagnostics=[Diagnostic("first; with a semicolon"), Diagnostic("second\nline")])
    assert render_failure(error) == "Error: first; with a semicolon\nError: second\\nline\n"
    # str() is a summary for logs, not the problems run together.
    assert str(error) == "first; with a semicolon (and 1 more problem)"


def test_a_configuration_error_keeps_its_located_diagnostics():
    error = ConfigError([Diagnostic("bad", file="links.yaml", line=3, column=5), Diagnostic("worse", file="links.yaml")])
    assert str(error) == "2 errors in the configuration"
    assert render_failure(error, file="other.yaml") == "Error: links.yaml:3:5: bad\nError: links.yaml: worse\n"


def test_detail_drops_the_place_a_message_begins_with():
    assert Diagnostic("clusters[1].endpoint: no port", path=("clusters", 1, "endpoint")).detail == "no port"
    explicit = Diagnostic("links[2]: same cluster", path=("links", 2, "target"), where="links[2]")
    assert explicit.detail == "same cluster"
    assert Diagnostic("state.json: is damaged").detail == "state.json: is damaged"  # no place of its own


def test_every_unknown_target_is_its_own_line(basic, skyplan):
    result = skyplan("plan", "--target", "link.nope", "--exclude", "cluster.gone")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --target link.nope: no such resource in the configuration or the state\n"
        "Error: --exclude cluster.gone: no such resource in the configuration or the state\n"
    )


def test_state_rm_lists_every_problem(basic, skyplan):
    assert skyplan("apply", "--auto-approve").exit_code == 0
    result = skyplan("state", "rm", "cluster.us-west", "link.nope")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: no resource at address link.nope in the state",
        "Error: link.us-ap joins cluster.us-west; forget it too (state rm link.us-ap) or keep the cluster",
        "Error: link.us-eu joins cluster.us-west; forget it too (state rm link.us-eu) or keep the cluster",
    ]


def test_skyctl_shows_each_rule_it_breaks_without_document_places(workspace, skyctl):
    skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820", "--subnet", "10.1.0.0/16")
    result = skyctl("create", "cluster", "b", "--endpoint", "no-port-here", "--subnet", "100.96.1.0/24")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert all(line.startswith("Error: ") for line in lines)
    assert any("overlaps the address pool 100.96.0.0/16" in line for line in lines)
    assert not re.search(r"clusters\[\d+\]|links\[\d+\]", result.stderr), "a place in a document skyctl never showed"


def test_a_cluster_held_by_two_links_names_each(workspace, skyctl, skyplan):
    from tests.workspaces import links_yaml

    (workspace / "links.yaml").write_text(
        links_yaml([("a", "192.0.2.1:1", ["10.1.0.0/16"]), ("b", "192.0.2.2:1", ["10.2.0.0/16"]), ("c", "192.0.2.3:1", ["10.3.0.0/16"])], [])
    )
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert skyctl("create", "link", "x", "-s", "a", "-t", "b").exit_code == 0
    assert skyctl("create", "link", "y", "-s", "a", "-t", "c").exit_code == 0
    (workspace / "links.yaml").write_text(
        links_yaml([("b", "192.0.2.2:1", ["10.2.0.0/16"]), ("c", "192.0.2.3:1", ["10.3.0.0/16"])], [])
    )
    result = skyplan("plan")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: cluster.a cannot be destroyed while link.x (managed by skyctl) joins it; delete it first with: skyctl delete link x",
        "Error: cluster.a cannot be destroyed while link.y (managed by skyctl) joins it; delete it first with: skyctl delete link y",
    ]


def test_no_module_joins_problems_into_one_string_or_splits_them_back():
    """Rendering may lay out one line as it likes; nothing else runs problems together."""
    root = Path(skyplan.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.parent.name == "render":
            continue
        text = path.read_text()
        if '"; ".join' in text or '.split("; ")' in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_skyplan_error_subclasses_keep_their_message():
    assert str(SkyplanError("plain")) == "plain" and SkyplanError("plain").diagnostics[0].severity == "error"
