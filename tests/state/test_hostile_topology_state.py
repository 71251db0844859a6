"""A state written by someone else, with issue 13's arguments well-formed but not what links.yaml
says: a transit hub, a preshared key, an external key, a pin. The state is history, never the
plan: what apply writes comes from links.yaml alone."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from skyplan.state.postgres import STATES_TABLE
from tests.workspaces import links_yaml

ATTACKER_KEY = "zB5JQz6sh4drgW28eA6b17tyU7Fue9sXv+57ZcBWgAU="
PLAIN = links_yaml(
    [("x", "192.0.2.1:51820", ["10.1.0.0/16"]), ("y", "192.0.2.2:51820", ["10.2.0.0/16"]), ("z", "192.0.2.3:51820", ["10.3.0.0/16"])],
    [("x-y", "x", "y"), ("y-z", "y", "z")],
)


def hostile(document: dict) -> None:
    for resource in document["resources"]:
        if resource["name"] == "x-y":
            resource["attributes"].update(preshared_key=True, transit_hub="x")
        if resource["name"] == "y-z":
            resource["attributes"].update(transit_hub="y")
        if resource["name"] == "z":
            resource["attributes"].update(public_key=ATTACKER_KEY, address="100.96.0.77")


def configs(workspace) -> dict[str, str]:
    return {p.relative_to(workspace).as_posix(): p.read_text() for p in sorted((workspace / "wireguard").rglob("*.conf"))}


def assert_links_yaml_decided(workspace, before_keys: dict[str, str]) -> None:
    written = "\n".join(configs(workspace).values())
    assert "PostUp" not in written and "PresharedKey" not in written, "the state made a hub or a preshared key"
    assert ATTACKER_KEY not in written, "the state put its key into a peer's config"
    assert "100.96.0.77" not in written, "the state pinned an address"
    assert not list(workspace.rglob("*.psk"))
    keys_now = {p.name: p.read_text() for p in (workspace / ".skyplan/keys").iterdir()}
    # A cluster the state calls external leaves it by replacement, which the plan shows (below):
    # its key is new. No other key changes.
    assert sorted(keys_now) == sorted(before_keys)
    assert {n: v for n, v in keys_now.items() if n != "z.key"} == {n: v for n, v in before_keys.items() if n != "z.key"}
    from skyplan_wireguard import keys

    new_z = keys.public_key(keys_now["z.key"].strip())
    assert f"PublicKey = {new_z}" in configs(workspace)["wireguard/y/wgsky0.conf"]


def test_well_formed_hostile_arguments_in_state_json_decide_nothing(workspace, skyplan) -> None:
    (workspace / "links.yaml").write_text(PLAIN)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    written = configs(workspace)
    before_keys = {p.name: p.read_text() for p in (workspace / ".skyplan/keys").iterdir()}
    state = workspace / ".skyplan/state.json"
    document = json.loads(state.read_text())
    hostile(document)
    state.write_text(json.dumps(document, indent=2))

    plan = skyplan("plan", "--compact")
    assert plan.exit_code == 0, plan.output
    assert "-/+ cluster.z  (it became or stopped being an external peer" in plan.output, plan.output
    assert configs(workspace) == written, "plan wrote a config"
    applied = skyplan("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert_links_yaml_decided(workspace, before_keys)
    assert "No changes." in skyplan("plan").output


@pytest.mark.postgres
def test_well_formed_hostile_arguments_in_a_postgresql_row_decide_nothing(workspace, skyplan, postgres_url, monkeypatch) -> None:
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    name = f"hostile-{uuid.uuid4()}"
    (workspace / "links.yaml").write_text(PLAIN + f"backend:\n  type: postgres\n  url: '{postgres_url}'\n  workspace: {name}\n")
    assert skyplan("apply", "--auto-approve").exit_code == 0
    before_keys = {p.name: p.read_text() for p in (workspace / ".skyplan/keys").iterdir()}
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        (document,) = conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = %s", [name]).fetchone()
        hostile(document)
        conn.execute(f"UPDATE {STATES_TABLE} SET state = %s WHERE workspace = %s", [json.dumps(document), name])
    applied = skyplan("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert_links_yaml_decided(workspace, before_keys)


HOSTILE_ROWS = {
    "transit_hub not an end": ("link", "x-y", {"transit_hub": "z"}),
    "transit_hub with a directive": ("link", "x-y", {"transit_hub": "x\nPostUp = touch marker"}),
    "preshared_key as text": ("link", "x-y", {"preshared_key": "true"}),
    "pinned address with a directive": ("cluster", "z", {"address": "100.96.0.9\nPostUp = touch marker"}),
    "external key of the wrong length": ("cluster", "z", {"public_key": ATTACKER_KEY[:-2] + "="}),
}


@pytest.mark.postgres
@pytest.mark.parametrize("case", sorted(HOSTILE_ROWS))
def test_a_malformed_topology_argument_in_a_postgresql_row_stops_every_command(workspace, skyplan, skyctl, postgres_url, monkeypatch, case) -> None:
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    name = f"hostile-{uuid.uuid4()}"
    (workspace / "links.yaml").write_text(PLAIN + f"backend:\n  type: postgres\n  url: '{postgres_url}'\n  workspace: {name}\n")
    assert skyplan("apply", "--auto-approve").exit_code == 0
    written = configs(workspace)
    kind, target, values = HOSTILE_ROWS[case]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        (document,) = conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = %s", [name]).fetchone()
        (resource,) = [r for r in document["resources"] if r["name"] == target and r["type"] == kind]
        resource["attributes"].update(values)
        conn.execute(f"UPDATE {STATES_TABLE} SET state = %s WHERE workspace = %s", [json.dumps(document), name])
    for command in (("plan",), ("apply", "--auto-approve"), ("destroy", "--auto-approve")):
        result = skyplan(*command)
        assert result.exit_code == 1, result.output
        assert f"{kind}.{target}" in result.output and "Traceback" not in result.output
    assert skyctl("get", kind).exit_code == 1
    assert configs(workspace) == written and not (workspace / "marker").exists()
    assert not list(workspace.rglob("*.psk"))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        (now,) = conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = %s", [name]).fetchone()
    assert now == document, "the state was written"
