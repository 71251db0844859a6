"""The JSON plan and state carry what Terraform's tools read, with values that do not mislead."""

from __future__ import annotations

import json
from pathlib import Path

from tests.workspaces import BASIC


def _plan(skyplan, *args: str) -> dict:
    result = skyplan("plan", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _changes(document: dict) -> dict[str, dict]:
    return {c["address"]: c for c in document["resource_changes"]}


def _private_keys(workspace: Path) -> list[str]:
    return [p.read_text().strip() for p in sorted((workspace / ".skyplan/keys").glob("*.key"))]


def test_first_plan_has_terraform_top_level_keys_and_unknown_computed_values(basic, skyplan):
    document = _plan(skyplan)
    assert document["format_version"] == "1.0"
    assert document["terraform_version"] == document["skyplan_version"]
    assert document["applyable"] is True and document["complete"] is True and document["errored"] is False
    assert document["timestamp"].endswith("Z")
    cluster = _changes(document)["cluster.us-west"]
    assert cluster["mode"] == "managed"
    assert cluster["change"]["before"] is None and cluster["change"]["before_sensitive"] is False
    # The address is planned before apply; only the key, made at apply, is unknown.
    assert cluster["change"]["after_unknown"] == {"public_key": True}
    assert cluster["change"]["after"]["address"].startswith("100.96.") and "public_key" not in cluster["change"]["after"]
    assert cluster["change"]["after"]["endpoint"] == "203.0.113.10:51820"
    planned = document["planned_values"]["root_module"]["resources"]
    assert [r["address"] for r in planned] == sorted(_changes(document))
    assert {(r["mode"], r["provider_name"]) for r in planned} == {("managed", "wireguard")}
    link = next(r for r in planned if r["address"] == "link.us-eu")
    assert link["values"] == {"source": "us-west", "target": "eu-central"}
    assert link["type"] == "link" and link["name"] == "us-eu"


def test_update_and_no_op_keep_computed_values_in_after(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / "links.yaml").write_text(BASIC.replace("198.51.100.20:51820", "198.51.100.21:51820"))
    document = _plan(skyplan)
    changes = _changes(document)
    updated, unchanged = changes["cluster.eu-central"]["change"], changes["cluster.us-west"]["change"]
    assert updated["actions"] == ["update"] and unchanged["actions"] == ["no-op"]
    for change in (updated, unchanged):
        # A before/after policy sees the key and the address stay, not "removed".
        assert change["after"]["public_key"] == change["before"]["public_key"]
        assert change["after"]["address"] == change["before"]["address"]
        assert change["after_unknown"] == {}
        assert change["before_sensitive"] == {} and change["after_sensitive"] == {}
    assert updated["after"]["endpoint"] == "198.51.100.21:51820"
    assert {k for k in updated["before"] if updated["before"][k] != updated["after"][k]} == {"endpoint"}
    planned = {r["address"]: r["values"] for r in document["planned_values"]["root_module"]["resources"]}
    assert planned["cluster.eu-central"] == updated["after"]
    prior = document["prior_state"]
    assert prior["serial"] >= 1 and prior["lineage"]
    prior_values = {r["address"]: r["values"] for r in prior["values"]["root_module"]["resources"]}
    assert prior_values["cluster.eu-central"] == updated["before"]
    text = json.dumps(document)
    assert all(key not in text for key in _private_keys(basic))


def test_action_reason_tokens_and_english_reasons(basic, skyplan):
    skyplan("apply", "--auto-approve")
    # us-ap now joins other clusters (its ends force a replace); us-eu is gone from the file.
    text = BASIC.replace(
        "  - name: us-eu\n    source: us-west\n    target: eu-central\n", ""
    ).replace("  - name: us-ap\n    source: us-west\n    target: ap-south\n", "  - name: us-ap\n    source: eu-central\n    target: ap-south\n")
    (basic / "links.yaml").write_text(text)
    changes = _changes(_plan(skyplan))
    deleted, replaced = changes["link.us-eu"], changes["link.us-ap"]
    assert deleted["change"]["actions"] == ["delete"] and deleted["change"]["after"] is None
    assert deleted["change"]["after_sensitive"] is False
    assert deleted["action_reason"] == "delete_because_no_resource_config"
    assert replaced["change"]["actions"] == ["delete", "create"]
    assert replaced["action_reason"] == "replace_because_cannot_update"
    assert replaced["reason"] == "its clusters changed"
    assert "action_reason" not in changes["cluster.us-west"]
    # A deleted resource is not in the planned values.
    document = _plan(skyplan)
    assert "link.us-eu" not in {r["address"] for r in document["planned_values"]["root_module"]["resources"]}


def test_lost_key_replace_and_drift_are_shaped_like_terraform(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / ".skyplan/keys/ap-south.key").unlink()
    (basic / "wireguard/eu-central/wgsky0.conf").unlink()
    document = _plan(skyplan)
    changes = _changes(document)
    assert changes["cluster.ap-south"]["change"]["actions"] == ["delete", "create"]
    assert changes["cluster.ap-south"]["action_reason"] == "replace_because_cannot_update"
    assert "key file" in changes["cluster.ap-south"]["reason"]
    drift = {d["address"]: d for d in document["resource_drift"]}
    assert set(drift) == {"cluster.ap-south", "cluster.eu-central"}
    assert drift["cluster.eu-central"]["mode"] == "managed"
    assert drift["cluster.eu-central"]["change"]["actions"] == ["update"]
    assert drift["cluster.eu-central"]["change"]["before"] == {"config": "present"}
    assert drift["cluster.eu-central"]["change"]["after"] == {"config": "missing"}
    assert {d["address"] for d in document["drift"]} == set(drift)  # skyplan's own shape stays


def test_saved_plan_shows_the_same_json(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / "links.yaml").write_text(BASIC.replace("10.20.0.0/16", "10.21.0.0/16"))
    direct = _plan(skyplan, "--out", "links.plan")
    shown = json.loads(skyplan("show", "links.plan", "--json").output)
    direct.pop("timestamp"), shown.pop("timestamp")
    assert shown == direct


def test_targeted_plan_is_not_complete_and_empty_plan_not_applyable(basic, skyplan):
    assert _plan(skyplan, "--target", "link.us-eu")["complete"] is False
    skyplan("apply", "--auto-approve")
    document = _plan(skyplan)
    assert document["applyable"] is False
    assert {tuple(c["change"]["actions"]) for c in document["resource_changes"]} == {("no-op",)}


def test_show_json_of_state_puts_resources_in_the_root_module(basic, skyplan):
    skyplan("apply", "--auto-approve")
    document = json.loads(skyplan("show", "--json").output)
    assert "resources" not in document["values"]
    resources = document["values"]["root_module"]["resources"]
    assert [r["address"] for r in resources] == sorted(r["address"] for r in resources)
    cluster = next(r for r in resources if r["address"] == "cluster.us-west")
    assert cluster["mode"] == "managed" and cluster["provider_name"] == "wireguard"
    assert cluster["values"]["public_key"] and cluster["values"]["address"].startswith("100.96.")
    assert document["terraform_version"] == document["skyplan_version"]
    assert all(key not in json.dumps(document) for key in _private_keys(basic))
