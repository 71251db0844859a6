"""A provider setting added after a state was written: the provider's upgrade fills it in.

The WireGuard provider is given a new per-cluster setting here the way a later version would
add one (a field of its settings model, its name in the cluster settings, the schema version
raised: all in the provider), and the 0.1.0 workspace must still plan "No changes": no error,
no key replaced, the same addresses, the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import Field

import skyplan.sdk
import skyplan.sdk.registry
from skyplan.sdk import ResourceView
from skyplan_wireguard import WireGuardProvider
from skyplan_wireguard.settings import CLUSTER_SETTINGS, WireGuardSettings


class SettingsWithDNS(WireGuardSettings):
    dns: str | None = Field(default=None, description="DNS server for wg-quick, if set.")


class WireGuardWithDNS(WireGuardProvider):
    """What a later version of the provider declares; the core is not touched."""

    settings_model = SettingsWithDNS
    cluster_settings = (*CLUSTER_SETTINGS, "dns")
    schema_version = WireGuardProvider.schema_version + 1


class WireGuardWithoutUpgrade(WireGuardWithDNS):
    """The same new setting, but an upgrade that forgets it: the state must be refused, loudly."""

    def upgrade(self, view: ResourceView, from_version: int) -> ResourceView:
        return view


def _use_provider(monkeypatch: pytest.MonkeyPatch, cls: type) -> None:
    # The registry answers with `cls` for "wireguard", as if that version were installed.
    monkeypatch.setattr(skyplan.sdk, "provider_class", lambda name: cls)
    monkeypatch.setattr(skyplan.sdk, "provider_class_from_ref", lambda ref: None)  # no cached config


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ("wireguard" in p.parts or "keys" in p.parts)}


def test_a_new_setting_leaves_an_old_state_planning_no_changes(old_workspace: Path, skyplan, skyctl, monkeypatch) -> None:
    _use_provider(monkeypatch, WireGuardWithDNS)
    before = json.loads((old_workspace / ".skyplan" / "state.json").read_text())
    assert all("dns" not in r["attributes"] and "schema_version" not in r for r in before["resources"])
    files = _files(old_workspace)

    result = skyplan("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert "No changes. Links match the configuration." in result.output
    assert "-/+" not in result.output and "damaged" not in result.output

    state_bytes = (old_workspace / ".skyplan" / "state.json").read_bytes()
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert (old_workspace / ".skyplan" / "state.json").read_bytes() == state_bytes  # nothing to record
    assert _files(old_workspace) == files  # no key rewritten, no config rewritten

    # The next write records every resource upgraded, in the provider's current schema.
    assert skyctl("create", "link", "second", "-s", "us-west", "-t", "eu-central").exit_code == 0
    after = json.loads((old_workspace / ".skyplan" / "state.json").read_text())
    by_name = lambda state: {r["name"]: r for r in state["resources"]}  # noqa: E731
    assert sorted(by_name(after)) == sorted([*by_name(before), "second"])  # every address kept
    for name, entry in by_name(before).items():
        assert by_name(after)[name]["computed"] == entry["computed"]  # keys and overlay addresses kept
        assert by_name(after)[name]["schema_version"] == WireGuardWithDNS.schema_version
        if entry["type"] == "cluster":
            assert by_name(after)[name]["attributes"] == {**entry["attributes"], "dns": None}
    assert skyplan("plan", "--detailed-exitcode").exit_code == 0


def test_setting_the_new_setting_is_an_update_in_place(old_workspace: Path, skyplan, monkeypatch) -> None:
    _use_provider(monkeypatch, WireGuardWithDNS)
    text = (old_workspace / "links.yaml").read_text().replace("  mtu: 1420\n", "  mtu: 1420\n  dns: 10.0.0.53\n")
    (old_workspace / "links.yaml").write_text(text)
    result = skyplan("plan")
    assert result.exit_code == 0, result.output
    assert "0 to add, 3 to change, 0 to destroy" in result.output and "-/+" not in result.output
    assert result.output.count('+ dns = "10.0.0.53"') == 3


def test_without_the_upgrade_the_old_state_is_refused_not_misread(old_workspace: Path, skyplan, monkeypatch) -> None:
    _use_provider(monkeypatch, WireGuardWithoutUpgrade)
    result = skyplan("plan")
    assert result.exit_code == 1
    assert "has no attribute 'dns'" in result.output and "internal error" not in result.output


def test_a_state_from_a_newer_provider_schema_is_refused(old_workspace: Path, skyplan) -> None:
    path = old_workspace / ".skyplan" / "state.json"
    document = json.loads(path.read_text())
    document["resources"][0]["schema_version"] = WireGuardProvider.schema_version + 5
    path.write_text(json.dumps(document))
    before = _files(old_workspace)
    result = skyplan("plan")
    assert result.exit_code == 1
    assert "written by a newer provider" in result.output and "cluster.ap-south" in result.output
    assert "internal error" not in result.output
    assert _files(old_workspace) == before


def test_an_upgrade_that_fails_on_a_damaged_entry_is_a_clear_error(old_workspace: Path, skyplan, monkeypatch) -> None:
    class Brittle(WireGuardWithDNS):
        def upgrade(self, view: ResourceView, from_version: int) -> ResourceView:
            raise ValueError("endpoint is not a string")

    _use_provider(monkeypatch, Brittle)
    result = skyplan("plan")
    assert result.exit_code == 1
    assert "cannot be upgraded from schema version 0: endpoint is not a string" in result.output
    assert "internal error" not in result.output


def test_the_upgrade_keeps_recorded_settings_and_fills_only_missing_ones(tmp_path: Path) -> None:
    from skyplan.sdk import WorkspacePaths

    provider = WireGuardWithDNS(SettingsWithDNS(), WorkspacePaths(tmp_path, tmp_path / ".skyplan"))
    recorded = ResourceView("cluster", "a", {"endpoint": "192.0.2.1:51820", "subnets": [], "listen_port": 51821}, {"address": "100.96.0.1"})
    upgraded = provider.upgrade(recorded, 0)
    assert upgraded.attributes["listen_port"] == 51821  # recorded: kept, not the default 51820
    assert upgraded.attributes["dns"] is None and upgraded.attributes["interface"] == "wgsky0"
    assert upgraded.computed == recorded.computed and (upgraded.type, upgraded.name) == ("cluster", "a")
    link = ResourceView("link", "l", {"source": "a", "target": "b"})
    assert provider.upgrade(link, 0) is link


def test_resources_in_schema_version_0_are_written_as_0_1_0_wrote_them(basic: Path, skyplan) -> None:
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert WireGuardProvider.schema_version == 0  # when it is raised, every resource records it
    assert "schema_version" not in (basic / ".skyplan" / "state.json").read_text()


def test_a_negative_schema_version_is_a_damaged_state(old_workspace: Path, skyplan) -> None:
    path = old_workspace / ".skyplan" / "state.json"
    document = json.loads(path.read_text())
    document["resources"][1]["schema_version"] = -1
    path.write_text(json.dumps(document))
    result = skyplan("plan")
    assert result.exit_code == 1 and "is damaged: resources.1.schema_version" in result.output
    assert "internal error" not in result.output
