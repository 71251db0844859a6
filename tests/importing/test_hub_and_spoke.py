"""`skyplan import` of hand-written hub-and-spoke files: a PostUp line, DNS, a preshared key, a
spoke behind NAT and a partner no file holds the key of."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from skyplan_wireguard import keys

from .confs import HubAndSpoke, semantic, stripped, write_hub_and_spoke


@pytest.fixture
def hub(workspace: Path) -> HubAndSpoke:
    return write_hub_and_spoke(workspace / "etc")


def _secrets(files: HubAndSpoke) -> list[str]:
    return [*files.private.values(), files.preshared]


def test_the_preview_names_what_is_not_carried_and_writes_nothing(skyplan, workspace: Path, hub: HubAndSpoke) -> None:
    before = sorted(p.relative_to(workspace) for p in workspace.rglob("*"))
    result = skyplan("import", *map(str, hub.files))
    assert result.exit_code == 0, result.output
    out = result.output
    for line in (
        "+ cluster.hub  (from ",
        "+ cluster.spoke1  (from ",
        "+ cluster.partner  (external peer",
        "+ link.hub.partner  (hub <-> partner)",
        "+ link.hub.spoke1  (hub <-> spoke1)",
        "+ link.hub.spoke2  (hub <-> spoke2)",
    ):
        assert line in out
    hub_file, spoke1_file = str(hub.files[0]), str(hub.files[1])
    assert f"{hub_file}:6: PostUp is not carried: skyplan runs no commands from a config" in out
    assert f"{hub_file}:7: PostDown is not carried" in out
    assert f"{spoke1_file}:5: DNS is not carried: skyplan sets no DNS servers" in out
    assert "Nothing was written; run again with --auto-approve" in out
    for secret in _secrets(hub):
        assert secret not in out
    # Nothing at all appeared in the workspace.
    assert sorted(p.relative_to(workspace) for p in workspace.rglob("*")) == before


def test_auto_approve_writes_a_canonical_configuration_the_state_and_the_keys(skyplan, workspace: Path, hub: HubAndSpoke) -> None:
    result = skyplan("import", *map(str, hub.files), "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Import complete!" in result.output
    for secret in _secrets(hub):
        assert secret not in result.output
    text = (workspace / "links.yaml").read_text()
    assert skyplan("fmt", "--check", "links.yaml").exit_code == 0  # canonical, as fmt writes it
    assert "interface: wg0" in text and "address_pool: 10.50.0.0/24" in text
    assert f"public_key: {hub.partner_public}" in text
    assert "preshared_key: true" in text
    for secret in _secrets(hub):
        assert secret not in text
    state_text = (workspace / ".skyplan" / "state.json").read_text()
    for secret in _secrets(hub):
        assert secret not in state_text
    state = json.loads(state_text)
    assert state["serial"] == 1
    assert {r["type"] + "." + r["name"] for r in state["resources"]} == {
        "cluster.hub", "cluster.spoke1", "cluster.spoke2", "cluster.partner",
        "link.hub.partner", "link.hub.spoke1", "link.hub.spoke2",
    }  # fmt: skip
    keys_folder = workspace / ".skyplan" / "keys"
    assert stat.S_IMODE(keys_folder.stat().st_mode) == 0o700
    for name in ("hub", "spoke1", "spoke2"):
        key_file = keys_folder / f"{name}.key"
        assert key_file.read_text().strip() == hub.private[name]
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    psk_file = keys_folder / "hub+spoke1.psk"
    assert psk_file.read_text().strip() == hub.preshared
    assert stat.S_IMODE(psk_file.stat().st_mode) == 0o600
    assert not (keys_folder / "partner.key").exists()


def test_the_first_plan_adds_and_replaces_nothing_and_apply_writes_equivalent_configs(skyplan, workspace: Path, hub: HubAndSpoke) -> None:
    assert skyplan("import", *map(str, hub.files), "--auto-approve").exit_code == 0
    plan = json.loads(skyplan("plan", "--json").output)
    actions = {c["address"]: c["change"]["actions"] for c in plan["resource_changes"]}
    assert plan["summary"]["add"] == 0 and plan["summary"]["destroy"] == 0
    assert all(a in (["no-op"], ["update"]) for a in actions.values()), actions
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert "No changes." in skyplan("plan").output
    for name, original in zip(("hub", "spoke1", "spoke2"), hub.files):
        written = workspace / "wireguard" / name / "wg0.conf"
        assert semantic(stripped(written)) == semantic(stripped(original)), name
    # The preshared key is the one both ends held, in both ends' configs.
    hub_conf = semantic(stripped(workspace / "wireguard" / "hub" / "wg0.conf"))
    assert hub_conf["peers"][hub.public("spoke1")]["presharedkey"] == hub.preshared
    assert "presharedkey" not in hub_conf["peers"][hub.public("spoke2")]


def test_keys_are_those_of_the_files(skyplan, workspace: Path, hub: HubAndSpoke) -> None:
    assert skyplan("import", *map(str, hub.files), "--auto-approve").exit_code == 0
    shown = json.loads(skyplan("show", "--json").output)
    clusters = {r["name"]: r["values"] for r in shown["values"]["root_module"]["resources"] if r["type"] == "cluster"}
    for name in ("hub", "spoke1", "spoke2"):
        assert clusters[name]["public_key"] == keys.public_key(hub.private[name])
    assert clusters["partner"]["public_key"] == hub.partner_public
    assert {n: v["address"] for n, v in clusters.items()} == {
        "hub": "10.50.0.1", "spoke1": "10.50.0.2", "spoke2": "10.50.0.3", "partner": "10.50.0.9",
    }  # fmt: skip


def test_a_spoke_without_a_listen_port_is_named_and_given_the_default(skyplan, workspace: Path, hub: HubAndSpoke) -> None:
    spoke2 = hub.files[2]
    spoke2.write_text(spoke2.read_text().replace("ListenPort = 51820\n", ""))
    result = skyplan("import", *map(str, hub.files))
    assert result.exit_code == 0, result.output
    assert f"{spoke2}:1: [Interface] has no ListenPort (WireGuard picks a random one); skyplan writes ListenPort = 51820" in result.output


def test_a_one_sided_peering_is_named_and_left_behind(skyplan, workspace: Path, hub: HubAndSpoke) -> None:
    spoke2 = hub.files[2]
    text = spoke2.read_text()
    spoke2.write_text(text[: text.index("[Peer]")])
    result = skyplan("import", *map(str, hub.files))
    assert result.exit_code == 0, result.output
    assert f"{hub.files[0]}:16: [Peer] spoke2 is not carried: {spoke2} has no [Peer] for hub" in result.output
    assert "link.hub.spoke2" not in result.output


def test_a_route_to_the_whole_overlay_through_the_hub_is_named(skyplan, workspace: Path, hub: HubAndSpoke) -> None:
    spoke1 = hub.files[1]
    spoke1.write_text(spoke1.read_text().replace("AllowedIPs = 10.50.0.1/32", "AllowedIPs = 10.50.0.0/24"))
    result = skyplan("import", *map(str, hub.files))
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"{spoke1}:11: AllowedIPs 10.50.0.0/24 for 'hub' is not carried: it routes overlay addresses of other clusters" in out
    assert f"{spoke1}:7: [Peer] hub: skyplan adds its overlay address 10.50.0.1 to AllowedIPs here" in out


def test_names_come_from_the_file_stems_when_they_differ(skyplan, workspace: Path, hub: HubAndSpoke) -> None:
    flat = []
    for name, path in zip(("hub", "spoke1", "spoke2"), hub.files):
        target = workspace / "flat" / f"{name}.conf"
        target.parent.mkdir(exist_ok=True)
        target.write_text(path.read_text())
        flat.append(str(target))
    result = skyplan("import", *flat, "--out", "flat.yaml", "--auto-approve")
    assert result.exit_code == 0, result.output
    text = (workspace / "flat.yaml").read_text()
    assert "- name: spoke1" in text and "interface:" not in text
