"""Day-2 operations through the CLI: --replace, moved entries, state mv, planned addresses,
and key files that are not the state's keys."""

from __future__ import annotations

import json
from pathlib import Path

from skyplan_wireguard import conf, keys
from tests.workspaces import BASIC

KEYS = Path(".skyplan/keys")


def state(workspace: Path) -> dict:
    return json.loads((workspace / ".skyplan/state.json").read_text())


def recorded(workspace: Path) -> dict[str, dict]:
    return {f"{r['type']}.{r['name']}": r for r in state(workspace)["resources"]}


def parsed(workspace: Path, cluster: str) -> conf.ParsedConf:
    return conf.parse((workspace / f"wireguard/{cluster}/wgsky0.conf").read_text())


def private_key(workspace: Path, cluster: str) -> str:
    return (workspace / KEYS / f"{cluster}.key").read_text().strip()


def applied(workspace: Path, skyplan, *args: str) -> None:
    result = skyplan("apply", "--auto-approve", *args)
    assert result.exit_code == 0, result.output


def no_changes(skyplan) -> None:
    result = skyplan("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    assert result.output == "No changes. Links match the configuration.\n"


# -- --replace ------------------------------------------------------------------------------------


def test_replace_gives_a_cluster_a_new_key_every_peer_takes(basic, skyplan):
    applied(basic, skyplan)
    old_private = private_key(basic, "us-west")
    old = recorded(basic)["cluster.us-west"]["computed"]

    planned = skyplan("plan", "--replace", "cluster.us-west")
    assert planned.exit_code == 0, planned.output
    assert (
        "  # cluster.us-west will be replaced, as requested\n"
        '-/+ cluster "us-west" {\n'
        f'      ~ public_key = "{old["public_key"]}" -> (known after apply)\n'
    ) in planned.output
    assert "Plan: 1 to add, 0 to change, 1 to destroy." in planned.output
    assert "cluster.eu-central" not in planned.output and "link." not in planned.output

    document = json.loads(skyplan("plan", "--json", "--replace", "cluster.us-west").output)
    change = next(c for c in document["resource_changes"] if c["address"] == "cluster.us-west")
    assert change["change"]["actions"] == ["delete", "create"]
    assert change["action_reason"] == "replace_by_request"  # Terraform's token, for tools
    assert change["reason"] == "as requested with --replace"  # the English, in a field of its own
    assert change["change"]["after"]["address"] == old["address"]
    assert change["change"]["after_unknown"] == {"public_key": True}

    applied(basic, skyplan, "--replace", "cluster.us-west")
    new = recorded(basic)["cluster.us-west"]["computed"]
    assert private_key(basic, "us-west") != old_private
    assert new["public_key"] == keys.public_key(private_key(basic, "us-west")) != old["public_key"]
    assert new["address"] == old["address"]
    assert parsed(basic, "us-west").interface["address"] == f"{old['address']}/32"
    for peer in ("eu-central", "ap-south"):  # every peer holds the new key after the same apply
        assert set(parsed(basic, peer).peers) == {new["public_key"]}
    no_changes(skyplan)


def test_replace_re_creates_a_link_and_changes_no_key(basic, skyplan):
    applied(basic, skyplan)
    before = {name: private_key(basic, name) for name in ("us-west", "eu-central", "ap-south")}
    result = skyplan("apply", "--auto-approve", "--replace", "link.us-eu")
    assert result.exit_code == 0, result.output
    assert "link.us-eu: Replacement complete" in result.output
    assert "Apply complete! Resources: 1 added, 0 changed, 1 destroyed." in result.output
    assert {name: private_key(basic, name) for name in before} == before
    no_changes(skyplan)


def test_replace_of_nothing_and_in_a_destroy_is_refused_before_anything_is_written(basic, skyplan):
    result = skyplan("plan", "--replace", "cluster.nope", "--replace", "nope")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --replace cluster.nope: no such resource in the configuration or the state\n"
        "Error: --replace nope: 'nope' is not a resource address; write cluster.NAME or link.NAME\n"
    )
    assert not (basic / ".skyplan").exists()
    destroy = skyplan("destroy", "--auto-approve", "--replace", "cluster.us-west")
    assert destroy.exit_code == 1
    assert "--replace is allowed only in a normal plan" in destroy.stderr
    assert not (basic / ".skyplan").exists()

    applied(basic, skyplan)
    assert skyplan("plan", "--out", "p.plan").exit_code == 0
    saved = skyplan("apply", "p.plan", "--replace", "cluster.us-west")
    assert saved.exit_code == 1 and "but this command gives --replace cluster.us-west" in saved.stderr


# -- moved ----------------------------------------------------------------------------------------


def rename_in_file(workspace: Path, old: str, new: str, moved: str) -> None:
    text = (workspace / "links.yaml").read_text().replace(old, new)
    (workspace / "links.yaml").write_text(text + f"moved:\n{moved}")


def test_moved_cluster_keeps_key_address_and_links(basic, skyplan):
    applied(basic, skyplan)
    before = recorded(basic)
    key = private_key(basic, "us-west")
    rename_in_file(basic, "us-west", "us-west2", "  - {from: cluster.us-west, to: cluster.us-west2}\n")

    planned = skyplan("plan", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output  # a move is a change that apply must record
    assert planned.output == (
        "skyplan will perform the following actions:\n\n"
        "  # cluster.us-west has moved to cluster.us-west2\n"
        '    cluster "us-west2" {\n'
        "        # (9 unchanged attributes hidden)\n"
        "    }\n\n"
        "Plan: 0 to add, 0 to change, 0 to destroy.\n"
    )
    document = json.loads(skyplan("plan", "--json").output)
    moved = [c for c in document["resource_changes"] if c.get("previous_address")]
    assert [(c["previous_address"], c["address"], c["change"]["actions"]) for c in moved] == [
        ("cluster.us-west", "cluster.us-west2", ["no-op"])
    ]

    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "cluster.us-west2: Move complete" in result.output
    after = recorded(basic)
    assert "cluster.us-west" not in after
    assert after["cluster.us-west2"]["computed"] == before["cluster.us-west"]["computed"]
    assert after["cluster.us-west2"]["created"] == before["cluster.us-west"]["created"]
    assert (after["link.us-eu"]["attributes"], after["link.us-ap"]["attributes"]) == (
        {"source": "us-west2", "target": "eu-central"},
        {"source": "us-west2", "target": "ap-south"},
    )
    # The key file and the generated folder followed the rename; no key was generated.
    assert private_key(basic, "us-west2") == key
    assert not (basic / KEYS / "us-west.key").exists()
    assert not (basic / "wireguard/us-west").exists()
    assert parsed(basic, "us-west2").interface["address"] == f"{before['cluster.us-west']['computed']['address']}/32"
    assert "# Peer us-west2, link: us-eu" in (basic / "wireguard/eu-central/wgsky0.conf").read_text()
    no_changes(skyplan)  # the moved entry may stay: its source is gone, so it does nothing


def test_moved_link_is_renamed_not_replaced(basic, skyplan):
    applied(basic, skyplan)
    keys_before = sorted(p.read_text() for p in (basic / KEYS).iterdir())
    rename_in_file(basic, "name: us-eu", "name: west-east", "  - {from: link.us-eu, to: link.west-east}\n")
    planned = skyplan("plan")
    assert "# link.us-eu has moved to link.west-east" in planned.output
    assert "-/+" not in planned.output and "will be" not in planned.output
    applied(basic, skyplan)
    assert set(recorded(basic)) >= {"link.west-east"} and "link.us-eu" not in recorded(basic)
    assert "# Peer eu-central, link: west-east" in (basic / "wireguard/us-west/wgsky0.conf").read_text()
    assert sorted(p.read_text() for p in (basic / KEYS).iterdir()) == keys_before
    no_changes(skyplan)


def test_moved_and_changed_cluster_is_updated_in_place_under_its_new_name(basic, skyplan):
    applied(basic, skyplan)
    text = BASIC.replace("us-west", "usw").replace("203.0.113.10:51820", "203.0.113.11:51820")
    (basic / "links.yaml").write_text(text + "moved:\n  - {from: cluster.us-west, to: cluster.usw}\n")
    planned = skyplan("plan")
    assert (
        "  # cluster.usw will be updated in-place\n"
        "  # (moved from cluster.us-west)\n"
        '  ~ cluster "usw" {\n'
        '      ~ endpoint = "203.0.113.10:51820" -> "203.0.113.11:51820"\n'
    ) in planned.output
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in planned.output


# -- state mv -------------------------------------------------------------------------------------


def test_state_mv_moves_key_and_files_under_the_lock(basic, skyplan):
    applied(basic, skyplan)
    before = state(basic)
    key = private_key(basic, "us-west")
    result = skyplan("state", "mv", "cluster.us-west", "cluster.usw")
    assert result.exit_code == 0, result.output
    assert result.output == 'Move "cluster.us-west" to "cluster.usw"\nSuccessfully moved 1 object(s).\n'
    after = state(basic)
    assert after["serial"] > before["serial"] and after["lineage"] == before["lineage"]
    assert private_key(basic, "usw") == key and not (basic / KEYS / "us-west.key").exists()
    assert (basic / "wireguard/usw/wgsky0.conf").exists() and not (basic / "wireguard/us-west").exists()
    assert not (basic / ".skyplan/state.json.lock").read_text()  # the lock was taken and released
    # Renamed in the file too, the plan has nothing to do.
    (basic / "links.yaml").write_text(BASIC.replace("us-west", "usw"))
    no_changes(skyplan)


def test_state_mv_refuses_what_it_cannot_do_and_changes_nothing(basic, skyplan):
    applied(basic, skyplan)
    before = (basic / ".skyplan/state.json").read_bytes()
    for args, message in [
        (("cluster.nope", "cluster.x"), "Error: no resource at address cluster.nope in the state\n"),
        (("cluster.us-west", "link.x"), "Error: cannot move cluster.us-west to link.x: a move keeps the resource's type\n"),
        (
            ("cluster.us-west", "cluster.eu-central"),
            "Error: cannot move cluster.us-west to cluster.eu-central: the state already holds cluster.eu-central\n",
        ),
        (("cluster.us-west", "cluster.../etc"), "Error: invalid cluster name '../etc': "),
    ]:
        result = skyplan("state", "mv", *args)
        assert result.exit_code == 1
        assert result.stderr.startswith(message), result.stderr
    assert (basic / ".skyplan/state.json").read_bytes() == before
    assert sorted(p.name for p in (basic / KEYS).iterdir()) == ["ap-south.key", "eu-central.key", "us-west.key"]


def test_an_interrupted_move_is_finished_by_the_next_apply(basic, skyplan, monkeypatch):
    applied(basic, skyplan)
    key = private_key(basic, "us-west")

    def killed(self, request):
        raise KeyboardInterrupt
        yield  # a generator, as the real one

    with monkeypatch.context() as patch:
        patch.setattr("skyplan_wireguard.provider.WireGuardProvider.apply", killed)
        interrupted = skyplan("state", "mv", "cluster.us-west", "cluster.usw")
    assert interrupted.exit_code == 130
    entry = recorded(basic)["cluster.usw"]
    assert (entry["moved_from"], entry["pending"]) == ("us-west", "update")
    assert (basic / KEYS / "us-west.key").exists()  # the provider never ran

    (basic / "links.yaml").write_text(BASIC.replace("us-west", "usw"))
    planned = skyplan("plan")
    assert "# (moved from cluster.us-west)" in planned.output
    assert "-/+" not in planned.output and "key file" not in planned.output  # found under the old name
    applied(basic, skyplan)
    assert private_key(basic, "usw") == key and not (basic / KEYS / "us-west.key").exists()
    assert recorded(basic)["cluster.usw"]["moved_from"] is None
    no_changes(skyplan)


# -- planned values -------------------------------------------------------------------------------


def test_a_new_address_pool_shows_every_new_address(basic, skyplan):
    applied(basic, skyplan)
    old = {a: r["computed"]["address"] for a, r in recorded(basic).items() if a.startswith("cluster.")}
    (basic / "links.yaml").write_text(BASIC.replace("100.96.0.0/16", "100.97.0.0/16"))

    planned = skyplan("plan")
    document = json.loads(skyplan("plan", "--json").output)
    promised = {}
    for change in document["resource_changes"]:
        if change["type"] == "cluster":
            promised[change["address"]] = change["change"]["after"]["address"]
            assert change["change"]["actions"] == ["update"]
    assert set(promised) == set(old)
    for address, new in promised.items():
        assert new.startswith("100.97.") and new != old[address]
        assert f'      ~ address      = "{old[address]}" -> "{new}"\n' in planned.output

    applied(basic, skyplan)
    for address, new in promised.items():  # apply gives exactly the addresses the plan showed
        name = address.split(".", 1)[1]
        assert recorded(basic)[address]["computed"]["address"] == new
        assert parsed(basic, name).interface["address"] == f"{new}/32"
    no_changes(skyplan)


def test_a_new_cluster_shows_its_address_before_apply(workspace, skyplan):
    (workspace / "links.yaml").write_text(BASIC)
    planned = skyplan("plan")
    assert '      + address              = "100.96.0.1"\n' in planned.output
    assert '      + public_key           = (known after apply)\n' in planned.output
    applied(workspace, skyplan)
    assert recorded(workspace)["cluster.ap-south"]["computed"]["address"] == "100.96.0.1"


# -- key files that are not the state's keys ------------------------------------------------------


def plant_foreign_key(workspace: Path, cluster: str) -> str:
    """A teammate's key file: the same cluster, a key of their own."""
    foreign = keys.generate()
    (workspace / KEYS / f"{cluster}.key").write_text(foreign + "\n")
    return keys.public_key(foreign)


def test_a_foreign_key_file_stops_the_plan_naming_the_cluster(basic, skyplan):
    applied(basic, skyplan)
    before = (basic / ".skyplan/state.json").read_bytes()
    configs = {p: p.read_bytes() for p in (basic / "wireguard").rglob("*.conf")}
    recorded_public = recorded(basic)["cluster.us-west"]["computed"]["public_key"]
    foreign_public = plant_foreign_key(basic, "us-west")

    for command in (("plan",), ("apply", "--auto-approve")):
        result = skyplan(*command)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(
            f"Error: cluster.us-west: key file .skyplan/keys/us-west.key holds public key {foreign_public}, "
            f"but the state records {recorded_public}"
        )
        assert "--replace cluster.us-west" in result.stderr
        assert "updated in-place" not in result.output
    assert (basic / ".skyplan/state.json").read_bytes() == before  # never swapped into the state
    assert {p: p.read_bytes() for p in configs} == configs

    # Giving the cluster a new key on purpose is the way out, and it is loud.
    replaced = skyplan("apply", "--auto-approve", "--replace", "cluster.us-west")
    assert replaced.exit_code == 0, replaced.output
    assert recorded(basic)["cluster.us-west"]["computed"]["public_key"] not in (recorded_public, foreign_public)
    no_changes(skyplan)


def test_a_saved_plan_never_applies_a_foreign_key(basic, skyplan):
    applied(basic, skyplan)
    (basic / "links.yaml").write_text(BASIC.replace("203.0.113.10:51820", "203.0.113.11:51820"))
    assert skyplan("plan", "--out", "p.plan").exit_code == 0
    recorded_public = recorded(basic)["cluster.us-west"]["computed"]["public_key"]
    foreign_public = plant_foreign_key(basic, "us-west")

    result = skyplan("apply", "p.plan")
    assert result.exit_code == 1
    # Applying a saved plan plans again from the configuration and the state: the refresh finds
    # the foreign key and stops before the provider is asked for anything.
    assert "Error: cluster.us-west: key file .skyplan/keys/us-west.key holds public key" in result.output
    assert recorded(basic)["cluster.us-west"]["computed"]["public_key"] == recorded_public
    assert parsed(basic, "us-west").interface["public_key"] == recorded_public  # its file was not rewritten
    for peer in ("eu-central", "ap-south"):  # peers keep the key the state records
        assert set(parsed(basic, peer).peers) == {recorded_public}
        assert foreign_public not in (basic / f"wireguard/{peer}/wgsky0.conf").read_text()


def test_a_peer_file_is_never_written_with_a_foreign_key(basic, skyplan):
    applied(basic, skyplan)
    (basic / "links.yaml").write_text(BASIC.replace("198.51.100.20:51820", "198.51.100.21:51820"))
    # Without refresh neither the plan nor its second planning at apply reads the key files: the
    # provider's own check at apply is what stops the foreign key here.
    assert skyplan("plan", "--no-refresh", "--out", "p.plan").exit_code == 0  # eu-central changes; us-west is its peer
    recorded_public = recorded(basic)["cluster.us-west"]["computed"]["public_key"]
    own_config = (basic / "wireguard/us-west/wgsky0.conf").read_bytes()
    foreign_public = plant_foreign_key(basic, "us-west")

    result = skyplan("apply", "p.plan")
    assert result.exit_code == 1
    assert "cluster.eu-central: Failed: key file .skyplan/keys/us-west.key holds public key" in result.output
    assert (basic / "wireguard/us-west/wgsky0.conf").read_bytes() == own_config
    assert recorded(basic)["cluster.us-west"]["computed"]["public_key"] == recorded_public
    assert foreign_public not in (basic / "wireguard/eu-central/wgsky0.conf").read_text()
