"""Saved plans (stale and foreign ones refused), state commands, and force-unlock."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.workspaces import BASIC


def test_a_saved_plan_is_applied_exactly(basic, skyplan):
    saved = skyplan("plan", "--out", "links.plan")
    assert saved.exit_code == 0
    assert "To perform exactly these actions, run: skyplan apply links.plan" in saved.output
    assert (basic / "links.plan").stat().st_mode & 0o777 == 0o600
    applied = skyplan("apply", "links.plan")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete! Resources: 5 added, 0 changed, 0 destroyed." in applied.output
    assert "link.us-ap: Creation complete" in applied.output


def test_a_saved_plan_is_refused_once_the_configuration_changed(basic, skyplan):
    skyplan("plan", "--out", "links.plan")
    # Applying it now would do what the file no longer says, with settings nobody can check.
    (basic / "links.yaml").write_text(BASIC.replace("  - name: us-ap\n    source: us-west\n    target: ap-south\n", ""))
    refused = skyplan("apply", "links.plan")
    assert refused.exit_code == 1
    assert refused.output == (
        "Error: Saved plan links.plan was altered or no longer matches links.yaml: the configuration is not "
        "the one the plan was made from. Nothing was done; run skyplan plan again\n"
    )
    assert not (basic / ".skyplan/state.json").exists() and not (basic / "wireguard").exists()


def test_show_of_a_saved_plan(basic, skyplan):
    skyplan("plan", "--out", "links.plan")
    text = skyplan("show", "links.plan")
    assert text.output.endswith("Plan: 5 to add, 0 to change, 0 to destroy.\n")
    document = json.loads(skyplan("show", "links.plan", "--json").output)
    assert document["summary"]["add"] == 5 and document["resource_changes"][0]["provider_name"] == "wireguard"


def test_a_stale_plan_is_refused(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / "links.yaml").write_text(BASIC.replace("203.0.113.10", "203.0.113.11"))
    skyplan("plan", "--out", "first.plan")
    skyplan("plan", "--out", "second.plan")
    assert skyplan("apply", "first.plan").exit_code == 0
    before = (basic / ".skyplan/state.json").read_bytes()
    stale = skyplan("apply", "second.plan")
    assert stale.exit_code == 1
    assert "Saved plan is stale: the state changed since it was made" in stale.output
    assert (basic / ".skyplan/state.json").read_bytes() == before


def test_a_plan_from_other_state_is_refused(basic, skyplan, tmp_path):
    skyplan("apply", "--auto-approve")
    skyplan("plan", "--out", "mine.plan")
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(basic / "links.yaml", other / "links.yaml")
    import os

    os.chdir(other)
    skyplan("apply", "--auto-approve")
    document = json.loads((basic / "mine.plan").read_text())
    document["config_file"] = str(other / "links.yaml")
    document["backend"]["location"] = str(other / ".skyplan/state.json")
    (other / "foreign.plan").write_text(json.dumps(document))
    refused = skyplan("apply", "foreign.plan")
    assert refused.exit_code == 1
    assert "belongs to another state: lineage" in refused.output


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"format": "skyplan-plan", "format_version": 2, "plan": 3}', "is a damaged plan file"),
        ('{"format": "skyplan-plan", "format_version": 7}', "plan format version 7"),
        ('{"format": "skyplan-plan", "format_version": 1}', "plan format version 1, from an earlier skyplan"),
        ('{"format": "skyplan-plan", "format_ver', "not a skyplan plan file"),
    ],
)
def test_bad_plan_files(basic, skyplan, content, message):
    (basic / "bad.plan").write_text(content)
    for command in (("apply", "bad.plan"), ("show", "bad.plan")):
        result = skyplan(*command)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (basic / ".skyplan/state.json").exists()


def test_plan_files_hold_no_secrets(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / "links.yaml").write_text(BASIC.replace("203.0.113.10", "203.0.113.11"))
    skyplan("plan", "--out", "links.plan")
    text = (basic / "links.plan").read_text()
    for key in (basic / ".skyplan/keys").iterdir():
        assert key.read_text().strip() not in text


def test_state_list_show_and_rm(basic, skyplan):
    skyplan("apply", "--auto-approve")
    listed = skyplan("state", "list").output.split()
    assert listed == ["cluster.ap-south", "cluster.eu-central", "cluster.us-west", "link.us-ap", "link.us-eu"]
    shown = skyplan("state", "show", "cluster.us-west").output
    assert shown.startswith('# cluster.us-west:\ncluster "us-west" {') and "public_key" in shown
    assert skyplan("state", "show", "link.nope").output == "Error: no resource at address link.nope in the state\n"
    assert "is not a resource address" in skyplan("state", "show", "us-west").output
    refused = skyplan("state", "rm", "cluster.ap-south")
    assert refused.exit_code == 1 and "link.us-ap joins cluster.ap-south" in refused.output
    removed = skyplan("state", "rm", "link.us-ap", "cluster.ap-south")
    assert removed.output == "Removed cluster.ap-south\nRemoved link.us-ap\nSuccessfully removed 2 resource instances.\n"
    assert (basic / "wireguard/ap-south/wgsky0.conf").exists(), "rm forgets, it does not destroy"
    key = (basic / ".skyplan/keys/ap-south.key").read_text()
    # Still in the file, so planned again; its key file is reused, not regenerated.
    plan = skyplan("plan", "--compact")
    assert "+ cluster.ap-south" in plan.output and "+ link.us-ap" in plan.output
    skyplan("apply", "--auto-approve")
    assert (basic / ".skyplan/keys/ap-south.key").read_text() == key


def test_force_unlock_clears_a_dead_runs_lock(basic, skyplan):
    skyplan("plan")
    info = {"id": "dead-run", "operation": "apply", "who": "ops@elsewhere (pid 1)", "created": "2026-01-01T00:00:00Z"}
    (basic / ".skyplan/state.json.lock").write_text(json.dumps(info))
    assert skyplan("force-unlock", "wrong-id").exit_code == 1
    result = skyplan("force-unlock", "dead-run")
    assert result.exit_code == 0 and "successfully unlocked" in result.output
    assert (basic / ".skyplan/state.json.lock").read_text() == ""
    assert skyplan("plan").exit_code == 0


def test_state_commands_work_without_a_valid_configuration(workspace, skyplan, skyctl):
    skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820")
    assert skyplan("state", "list").output == "cluster.a\n"  # no links.yaml at all
    (workspace / "links.yaml").write_text("version: [broken")
    assert skyplan("state", "list").output == "cluster.a\n"
    assert '# cluster.a:\ncluster "a" {' in skyplan("show").output
    assert skyplan("state", "rm", "cluster.a").exit_code == 0
    assert skyplan("state", "list").output == ""


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"attributes": {}}, "has no attribute 'address_pool', 'interface', 'listen_port'"),
        ({"attributes": {"endpoint": "x", "subnets": []}}, "has no attribute 'address_pool', 'interface'"),
    ],
)
def test_a_state_with_damaged_attributes_is_a_clear_error(basic, skyplan, skyctl, damage, message):
    skyplan("apply", "--auto-approve")
    document = json.loads((basic / ".skyplan/state.json").read_text())
    document["resources"][0].update(damage)
    (basic / ".skyplan/state.json").write_text(json.dumps(document))
    for run in (lambda: skyplan("plan"), lambda: skyctl("get", "link")):
        result = run()
        assert result.exit_code == 1 and message in result.output and "internal error" not in result.output


def test_filesystem_trouble_in_the_state_folder_is_a_clear_error(basic, skyplan):
    (basic / ".skyplan").write_text("a file where a folder should be")
    result = skyplan("plan")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot lock the state in ") and "internal error" not in result.output
    (basic / ".skyplan").unlink()
    skyplan("apply", "--auto-approve")
    (basic / ".skyplan/state.json.backup").unlink()
    (basic / ".skyplan/state.json.backup").mkdir()
    (basic / "links.yaml").write_text(BASIC.replace("203.0.113.10", "203.0.113.11"))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1 and "cannot write state to" in result.output and "internal error" not in result.output
