"""skyplan's commands through CliRunner: outputs, exit codes, files written and not written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from skyplan import __version__
from tests.workspaces import links_yaml

TWO = links_yaml(
    [("us-west", "203.0.113.10:51820", ["10.10.0.0/16"]), ("eu-central", "198.51.100.20:51820", ["10.20.0.0/16"])],
    [("us-eu", "us-west", "eu-central")],
)


def private_keys(workspace: Path) -> list[str]:
    return [p.read_text().strip() for p in sorted((workspace / ".skyplan" / "keys").glob("*.key"))]


def test_plan_prints_the_contract_format(workspace, skyplan):
    (workspace / "links.yaml").write_text(TWO)
    result = skyplan("plan")
    assert result.exit_code == 0
    assert (
        '  # link.us-eu will be created\n'
        '  + link "us-eu" {\n'
        '      + source = "us-west"\n'
        '      + target = "eu-central"\n'
        '    }\n'
    ) in result.output
    assert '  # cluster.eu-central will be created\n  + cluster "eu-central" {\n' in result.output
    assert '      + public_key           = (known after apply)\n' in result.output
    assert result.output.endswith("Plan: 3 to add, 0 to change, 0 to destroy.\n")
    # Sorted by address, so the same configuration always gives the same text.
    order = re.findall(r"# (\S+) will be", result.output)
    assert order == sorted(order) == ["cluster.eu-central", "cluster.us-west", "link.us-eu"]
    assert not (workspace / ".skyplan" / "state.json").exists()


def test_apply_converges_and_a_second_apply_changes_nothing(basic, skyplan):
    first = skyplan("apply", "--auto-approve")
    assert first.exit_code == 0, first.output
    assert "Apply complete! Resources: 5 added, 0 changed, 0 destroyed." in first.output
    second = skyplan("apply", "--auto-approve")
    assert second.exit_code == 0
    assert second.output == "No changes. Links match the configuration.\n"
    plan = skyplan("plan", "--detailed-exitcode")
    assert plan.exit_code == 0


def test_detailed_exitcode(basic, skyplan):
    assert skyplan("plan", "--detailed-exitcode").exit_code == 2
    skyplan("apply", "--auto-approve")
    assert skyplan("plan", "--detailed-exitcode").exit_code == 0
    (basic / "links.yaml").write_text("version: [")
    assert skyplan("plan", "--detailed-exitcode").exit_code == 1


def test_apply_without_terminal_refuses_and_changes_nothing(basic, skyplan):
    result = skyplan("apply")
    assert result.exit_code == 1
    assert "needs confirmation, but input is not a terminal" in result.output
    assert "Plan: 5 to add, 0 to change, 0 to destroy." in result.output  # what was not applied
    # Only what `skyplan plan` leaves (its lock file and cache): no state, no key, no config.
    assert not (basic / ".skyplan/state.json").exists()
    assert not (basic / ".skyplan/keys").exists()
    assert not (basic / "wireguard").exists()


@pytest.mark.parametrize("answer, applied", [("yes", True), ("no", False), ("y", False), ("", False)])
def test_apply_asks_and_only_yes_approves(basic, skyplan, monkeypatch, answer, applied):
    monkeypatch.setattr("skyplan.cli.common.stdin_is_terminal", lambda: True)
    result = skyplan("apply", input=f"{answer}\n")
    assert "Only 'yes' will be accepted to approve." in result.output
    if applied:
        assert result.exit_code == 0
        assert "Apply complete!" in result.output
    else:
        assert result.exit_code == 1
        assert "Apply cancelled." in result.output
        assert not (basic / "wireguard").exists()
        assert not (basic / ".skyplan" / "state.json").exists()


def test_removing_a_link_removes_the_peer_on_both_ends(basic, skyplan):
    skyplan("apply", "--auto-approve")
    us_west = (basic / "wireguard/us-west/wgsky0.conf").read_text()
    eu = (basic / "wireguard/eu-central/wgsky0.conf").read_text()
    assert us_west.count("[Peer]") == 2 and eu.count("[Peer]") == 1
    text = (basic / "links.yaml").read_text()
    (basic / "links.yaml").write_text(text.replace("  - name: us-eu\n    source: us-west\n    target: eu-central\n", ""))
    plan = skyplan("plan")
    assert "  # link.us-eu will be destroyed" in plan.output
    assert "Plan: 0 to add, 0 to change, 1 to destroy." in plan.output
    result = skyplan("apply", "--auto-approve")
    assert "Apply complete! Resources: 0 added, 0 changed, 1 destroyed." in result.output
    assert (basic / "wireguard/us-west/wgsky0.conf").read_text().count("[Peer]") == 1
    assert "[Peer]" not in (basic / "wireguard/eu-central/wgsky0.conf").read_text()
    assert "# Peer ap-south" in (basic / "wireguard/us-west/wgsky0.conf").read_text()


def test_destroy_removes_everything(basic, skyplan):
    skyplan("apply", "--auto-approve")
    result = skyplan("destroy", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Plan: 0 to add, 0 to change, 5 to destroy." in result.output
    assert "Destroy complete! Resources: 5 destroyed." in result.output
    assert list((basic / "wireguard").rglob("*.conf")) == []
    assert private_keys(basic) == []
    state = json.loads((basic / ".skyplan/state.json").read_text())
    assert state["resources"] == []
    assert skyplan("destroy", "--auto-approve").output == "No changes. Links match the configuration.\n"


def test_destroy_without_terminal_refuses(basic, skyplan):
    skyplan("apply", "--auto-approve")
    result = skyplan("destroy")
    assert result.exit_code == 1
    assert len(list((basic / "wireguard").rglob("*.conf"))) == 3


def test_private_keys_appear_only_in_key_files_and_own_configs(basic, skyplan):
    outputs = [skyplan("plan").output, skyplan("apply", "--auto-approve").output]
    keys = private_keys(basic)
    assert len(keys) == 3
    (basic / "links.yaml").write_text((basic / "links.yaml").read_text().replace("203.0.113.10", "203.0.113.11"))
    outputs += [
        skyplan("plan").output,
        skyplan("plan", "--json").output,
        skyplan("apply", "--auto-approve", "--json").output,
        skyplan("show").output,
        skyplan("show", "--json").output,
    ]
    (basic / ".skyplan/keys/ap-south.key").unlink()  # drift output mentions the key file, never a key
    outputs += [skyplan("plan").output, skyplan("apply", "--auto-approve").output]
    keys += private_keys(basic)
    files = [basic / ".skyplan/state.json", basic / ".skyplan/state.json.backup", basic / ".skyplan/state.json.lock"]
    texts = outputs + [f.read_text() for f in files]
    for key in keys:
        for text in texts:
            assert key not in text
    for config in (basic / "wireguard").rglob("*.conf"):
        own = (basic / ".skyplan/keys" / f"{config.parent.name}.key").read_text().strip()
        found = [k for k in private_keys(basic) if k in config.read_text()]
        assert found == [own]


def test_plan_json_is_shaped_like_terraform(basic, skyplan):
    document = json.loads(skyplan("plan", "--json").output)
    assert document["format_version"] == "1.0"
    assert document["prior_state"] is None
    assert document["summary"]["add"] == 5
    change = next(c for c in document["resource_changes"] if c["address"] == "link.us-eu")
    assert change["type"] == "link" and change["name"] == "us-eu" and change["provider_name"] == "wireguard"
    assert change["change"]["actions"] == ["create"]
    assert change["change"]["before"] is None
    assert change["change"]["after"] == {"source": "us-west", "target": "eu-central"}
    assert document["drift"] == []
    skyplan("apply", "--auto-approve")
    again = json.loads(skyplan("plan", "--json").output)
    assert {tuple(c["change"]["actions"]) for c in again["resource_changes"]} == {("no-op",)}
    assert again["prior_state"]["serial"] >= 2


def test_keys_are_never_regenerated_and_addresses_stay(basic, skyplan):
    skyplan("apply", "--auto-approve")
    keys_before = private_keys(basic)
    state = json.loads((basic / ".skyplan/state.json").read_text())
    addresses = {r["name"]: r["computed"]["address"] for r in state["resources"] if r["type"] == "cluster"}
    text = (basic / "links.yaml").read_text().replace("198.51.100.20", "198.51.100.21")
    text = text.replace("clusters:\n", "clusters:\n  - name: aaa-first\n    endpoint: 192.0.2.50:51820\n")
    (basic / "links.yaml").write_text(text)
    result = skyplan("apply", "--auto-approve")
    assert "Apply complete! Resources: 1 added, 1 changed, 0 destroyed." in result.output
    assert all(k in private_keys(basic) for k in keys_before)
    state = json.loads((basic / ".skyplan/state.json").read_text())
    after = {r["name"]: r["computed"]["address"] for r in state["resources"] if r["type"] == "cluster"}
    assert {n: after[n] for n in addresses} == addresses
    assert after["aaa-first"] not in addresses.values()


def test_files_have_private_modes(basic, skyplan):
    skyplan("apply", "--auto-approve")
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(basic / ".skyplan/state.json") == 0o600
    assert mode(basic / ".skyplan/state.json.backup") == 0o600
    assert mode(basic / ".skyplan/keys") == 0o700
    for key in (basic / ".skyplan/keys").iterdir():
        assert mode(key) == 0o600
    for config in (basic / "wireguard").rglob("*.conf"):
        assert mode(config) == 0o600


def test_state_records_serial_lineage_and_backup(basic, skyplan):
    skyplan("apply", "--auto-approve")
    state = json.loads((basic / ".skyplan/state.json").read_text())
    assert state["version"] == 1 and state["serial"] >= 1 and state["lineage"]
    first_serial, lineage = state["serial"], state["lineage"]
    (basic / "links.yaml").write_text((basic / "links.yaml").read_text().replace("10.30.0.0/16", "10.30.0.0/17"))
    skyplan("apply", "--auto-approve")
    state = json.loads((basic / ".skyplan/state.json").read_text())
    backup = json.loads((basic / ".skyplan/state.json.backup").read_text())
    assert state["lineage"] == lineage and state["serial"] > first_serial
    assert backup["serial"] == first_serial, "the backup is the state from before this run"
    assert all("private" not in json.dumps(r).lower() for r in state["resources"])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{not json", "is not valid JSON (line 1, column 2)"),
        (b"", "is empty"),
        (b'{"version": 1, "serial": 3, "lineage": "x", "resources": [{"type": "rocket"}]}', "is damaged"),
        (b'{"version": 9, "serial": 3, "lineage": "x"}', "written by a newer skyplan"),
        (b'{"terraform_version": "1.11"}', "is not a skyplan state file"),
    ],
)
def test_bad_state_is_a_clear_error_and_is_not_overwritten(basic, skyplan, content, message):
    (basic / ".skyplan").mkdir()
    (basic / ".skyplan/state.json").write_bytes(content)
    for command in (("plan",), ("apply", "--auto-approve"), ("show",)):
        result = skyplan(*command)
        assert result.exit_code == 1
        assert message in result.output
        assert "Traceback" not in result.output
    assert (basic / ".skyplan/state.json").read_bytes() == content
    assert not (basic / "wireguard").exists()


@pytest.mark.parametrize(
    "text",
    ["version: [", "\x00", "- just\n- a list\n", "version: 1\nclusters: {a: b}\n", "version: 1\nprovider: {name: nope}\n"],
)
def test_bad_config_fails_cleanly_and_writes_nothing(workspace, skyplan, text):
    (workspace / "links.yaml").write_text(text)
    for command in (("validate",), ("plan",), ("apply", "--auto-approve")):
        result = skyplan(*command)
        assert result.exit_code == 1
        assert result.output.startswith("Error: links.yaml")
        assert "Traceback" not in result.output
    assert sorted(p.name for p in workspace.iterdir()) == ["links.yaml"]


def test_unknown_provider_lists_installed_ones(workspace, skyplan):
    (workspace / "links.yaml").write_text("version: 1\nprovider:\n  name: wireguad\n")
    result = skyplan("validate")
    assert "unknown provider 'wireguad'; installed providers: wireguard; did you mean 'wireguard'?" in result.output


def test_missing_file_is_named(workspace, skyplan):
    result = skyplan("plan", "nowhere.yaml")
    assert result.exit_code == 1
    assert result.output == "Error: nowhere.yaml: no such file\n"


def test_show_prints_state_without_keys(basic, skyplan):
    assert "The state is empty" in skyplan("show").output
    skyplan("apply", "--auto-approve")
    text = skyplan("show").output
    assert '# link.us-eu:\nlink "us-eu" {' in text
    assert "public_key" in text
    document = json.loads(skyplan("show", "--json").output)
    assert [r["address"] for r in document["values"]["root_module"]["resources"]][:1] == ["cluster.ap-south"]


@pytest.mark.parametrize("command", [[], ["validate"], ["plan"], ["apply"], ["destroy"], ["show"]])
def test_help_and_version(skyplan, command):
    assert skyplan(*command, "--help").exit_code == 0
    version = skyplan("--version")
    assert version.output.startswith("skyplan ")


@pytest.mark.parametrize(
    "command", [["plan"], ["apply"], ["state", "list"], ["state"], ["fmt"], ["schema"], ["force-unlock"], ["show"]]
)
def test_version_everywhere(skyplan, command):
    result = skyplan(*command, "--version")
    assert result.exit_code == 0 and result.output == f"skyplan {__version__}\n"
