"""Targeting, templates, apply exit codes and JSON summaries, as a CI pipeline uses them."""

from __future__ import annotations

import json

from tests.workspaces import BASIC

TARGETING = "Note: Resource targeting is in effect"


def test_target_a_link_brings_its_clusters(basic, skyplan):
    result = skyplan("plan", "--target", "link.us-eu", "--compact")
    assert result.exit_code == 0
    assert [line.split()[-1] for line in result.output.splitlines() if line.strip().startswith("+")] == [
        "cluster.eu-central",
        "cluster.us-west",
        "link.us-eu",
    ]
    assert TARGETING in result.output
    applied = skyplan("apply", "--target", "link.us-eu", "--auto-approve")
    assert "Apply complete! Resources: 3 added, 0 changed, 0 destroyed." in applied.output
    rest = skyplan("plan", "--compact")
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in rest.output and TARGETING not in rest.output


def test_exclude_a_cluster_leaves_out_its_links(basic, skyplan):
    result = skyplan("plan", "--exclude", "cluster.ap-south", "--json")
    document = json.loads(result.output)
    assert document["summary"]["addresses"]["create"] == ["cluster.eu-central", "cluster.us-west", "link.us-eu"]
    assert document["notes"][0].startswith("Resource targeting is in effect")


def test_unknown_target_is_an_error(basic, skyplan):
    result = skyplan("plan", "--target", "link.nope")
    assert result.exit_code == 1
    assert result.output == "Error: --target link.nope: no such resource in the configuration or the state\n"


def test_apply_detailed_exitcode(basic, skyplan):
    assert skyplan("apply", "--auto-approve", "--detailed-exitcode").exit_code == 2
    assert skyplan("apply", "--auto-approve", "--detailed-exitcode").exit_code == 0


def test_json_summary_lists_counts_and_addresses(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / "links.yaml").write_text(BASIC.replace("203.0.113.10", "203.0.113.11").replace("  - name: us-ap\n    source: us-west\n    target: ap-south\n", ""))
    summary = json.loads(skyplan("plan", "--json").output)["summary"]
    assert summary == {
        "add": 0,
        "change": 1,
        "destroy": 1,
        "addresses": {"create": [], "update": ["cluster.us-west"], "delete": ["link.us-ap"]},
    }


TEMPLATE = """\
version: 1
clusters:
{% for name in names %}
  - name: {{ name }}
    endpoint: "192.0.2.{{ loop.index }}:51820"
{% endfor %}
links:
  - {name: first, source: {{ names[0] }}, target: {{ names[1] }}}
"""


def test_templates_with_vars_and_var_files(workspace, skyplan):
    (workspace / "links.yaml.j2").write_text(TEMPLATE)
    (workspace / "vars.yaml").write_text("names: [a, b, c]\n")
    assert skyplan("validate", "links.yaml.j2", "--var-file", "vars.yaml").output == "Success! The configuration is valid.\n"
    missing = skyplan("validate", "links.yaml.j2")
    assert missing.exit_code == 1
    assert missing.output.startswith("Error: links.yaml.j2:3:1: template: 'names' is undefined")
    (workspace / "plain.yaml").write_text("version: 1\nclusters:\n  - name: {{ who }}\n    endpoint: 192.0.2.1:1\n")
    assert skyplan("validate", "plain.yaml", "--var", "who=x").exit_code == 0
    bad = skyplan("validate", "plain.yaml", "--var", "not a pair")
    assert bad.exit_code == 2 and "is not KEY=VALUE" in bad.output


def test_rendered_positions_are_named_as_rendered(workspace, skyplan):
    (workspace / "links.yaml.j2").write_text(TEMPLATE.replace('"192.0.2.{{ loop.index }}:51820"', '"192.0.2.{{ loop.index }}"'))
    result = skyplan("validate", "links.yaml.j2", "--var", "x=1", "--var-file", "/dev/null")
    assert result.exit_code == 1


def test_templates_run_sandboxed(workspace, skyplan):
    (workspace / "links.yaml.j2").write_text("version: 1\n# {{ ''.__class__.__mro__ }}\n")
    result = skyplan("validate", "links.yaml.j2")
    assert result.exit_code == 1
    assert "links.yaml.j2:2:1: template: not allowed" in result.output


def test_saved_plan_refuses_extra_flags(basic, skyplan):
    skyplan("plan", "--out", "p.plan")
    result = skyplan("apply", "p.plan", "--target", "link.us-eu")
    assert result.exit_code == 1
    assert "says it was made with no --destroy, --target, --exclude or --replace, but this command gives --target link.us-eu" in result.output


def test_bad_targets_leave_nothing_behind(basic, skyplan):
    result = skyplan("plan", "--target", "link.nope", "--target", "router.x")
    assert result.exit_code == 1 and "--target link.nope" in result.output and "--target router.x" in result.output
    assert sorted(p.name for p in basic.iterdir()) == ["links.yaml"]
