"""A state written by someone else: hostile names and values stop every command before it acts.

Written as the attacker would: entries added by editing state.json, and rows changed in the real
PostgreSQL server the suite starts. Each test asserts what must not happen: a file outside the
workspace deleted or written, a hook run, the state changed.
"""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest

from skyplan.state.postgres import STATES_TABLE
from tests.workspaces import BASIC

# Climbs to / from any folder under the workspace: `../` past the root stays at the root.
CLIMB = "../" * 40


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A folder outside the workspace, holding the files an attacker would like gone."""
    return tmp_path_factory.mktemp("outside")


def victims_of(name: str, outside: Path) -> list[Path]:
    """Where a cluster called `name` has its config and key, as apply would delete them."""
    target = Path(str(outside) + "/" + name.rsplit("/", 1)[-1])
    return [target / "wgsky0.conf", target.with_name(target.name + ".key")]


def hostile_cluster(name: str, **changes) -> dict:
    """A cluster entry as skyplan records one, with the attacker's name and values."""
    entry = {
        "type": "cluster",
        "name": name,
        "managed_by": "file",
        "attributes": {
            "endpoint": "192.0.2.66:51820",
            "subnets": ["10.66.0.0/16"],
            "listen_port": 51820,
            "interface": "wgsky0",
            "mtu": None,
            "persistent_keepalive": 25,
            "address_pool": "100.96.0.0/16",
            "output_dir": "wireguard",
        },
        "computed": {},
        "status": {"phase": "INIT", "reason": None, "since": "2026-01-01T00:00:00Z"},
        "created": "2026-01-01T00:00:00Z",
        "pending": None,
    }
    for key, value in changes.items():
        # gateway, public_key, address: recorded only when set
        if key in entry["attributes"] or key in ("gateway", "public_key", "address"):
            entry["attributes"][key] = value
        else:
            entry[key] = value
    return entry


def plant_victims(paths: list[Path]) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("precious\n")


def assert_refused(result, where: str, address: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    from skyplan.render.errors import one_line

    line = result.output.strip().splitlines()[-1]
    assert len(result.output.strip().splitlines()) == 1, "a hostile value broke the message into lines"
    assert line.startswith(f"Error: state {where} holds {one_line(address)}, which the configuration's rules refuse: "), line
    assert "Nothing was done." in line


# Hostile values, each reaching a path, a generated file or a command if it were used.
HOSTILE_VALUES = {
    "name climbing out": (CLIMB + "{outside}/victim-XYZ", {}),
    "name with a slash": ("a/b", {}),
    "name holding two names": ("victim\nother", {}),
    "output_dir outside": ("victim", {"output_dir": "{outside}"}),
    "output_dir climbing out": ("victim", {"output_dir": CLIMB + "{outside}"}),
    "interface with a slash": ("victim", {"interface": "../../../x"}),
    "endpoint with a newline": ("victim", {"endpoint": "192.0.2.1:51820\nPostUp = touch {outside}/marker"}),
    "subnet with a directive": ("victim", {"subnets": ["10.66.0.0/16\nPostUp = touch {outside}/marker"]}),
    "listen_port out of range": ("victim", {"listen_port": 0}),
    # A gateway reaches ssh's command line: an option there would run a command on this machine.
    "gateway as an ssh option": ("victim", {"gateway": "-oProxyCommand=touch {outside}/marker"}),
    "gateway as two arguments": ("victim", {"gateway": "host -oProxyCommand=x"}),
    "gateway with an ssh token": ("victim", {"gateway": "%n"}),
    # An external peer's key and a pinned address reach every peer's config, as the computed ones do.
    "public_key with a directive": ("victim", {"public_key": "k\nPostUp = touch {outside}/marker"}),
    "public_key that wg would refuse": ("victim", {"public_key": "A" * 42 + "B="}),
    "public_key not text": ("victim", {"public_key": ["A" * 43 + "="]}),
    "pinned address with a command": ("victim", {"address": "100.96.0.9$(touch {outside}/marker)"}),
    "pinned address with a prefix": ("victim", {"address": "0.0.0.0/0"}),
    "pinned address with a zone": ("victim", {"address": "fe80::1%eth0"}),
    "computed address with a command": (
        "victim", {"computed": {"address": "100.96.0.9$(touch {outside}/marker)", "public_key": "A" * 43 + "="}},
    ),
    "computed key with a directive": (
        "victim", {"computed": {"address": "100.96.0.9", "public_key": "k\nPostUp = touch {outside}/marker"}},
    ),
}


def _format(value, outside: Path):
    if isinstance(value, str):
        return value.replace("{outside}", str(outside))
    if isinstance(value, list):
        return [_format(v, outside) for v in value]
    if isinstance(value, dict):
        return {k: _format(v, outside) for k, v in value.items()}
    return value


def hostile_entry(case: str, outside: Path) -> dict:
    name, changes = HOSTILE_VALUES[case]
    return hostile_cluster(_format(name, outside), **_format(changes, outside))


def victims_for(entry: dict, outside: Path) -> list[Path]:
    """Every file outside the workspace that acting on `entry` would delete or write."""
    attributes = entry["attributes"]
    name = entry["name"]
    paths = victims_of(name, outside) if "/" in name else [outside / name / f"{attributes['interface']}.conf"]
    return paths + [outside / "victim" / "wgsky0.conf"]


HOOK = "  on_change: [sh, -c, 'echo {{ cluster }} {{ address }} >> hooks.log']\n"


def hooked_basic() -> str:
    return BASIC.replace("  address_pool: 100.96.0.0/16\n", "  address_pool: 100.96.0.0/16\n" + HOOK)


# -- the local state file ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(HOSTILE_VALUES))
def test_a_hostile_entry_in_state_json_stops_every_command(workspace, skyplan, skyctl, outside, case):
    (workspace / "links.yaml").write_text(hooked_basic())
    assert skyplan("apply", "--auto-approve").exit_code == 0
    state_path = workspace / ".skyplan/state.json"
    document = json.loads(state_path.read_text())
    entry = hostile_entry(case, outside)
    document["resources"].append(entry)
    state_path.write_text(json.dumps(document, indent=2))
    victims = victims_for(entry, outside)
    plant_victims(victims)
    (workspace / "hooks.log").unlink()
    before = state_path.read_bytes()
    address = f"cluster.{entry['name']}"

    for command in (("plan",), ("apply", "--auto-approve"), ("destroy", "--auto-approve")):
        assert_refused(skyplan(*command), str(state_path), address)
    assert_refused(skyctl("get", "link"), str(state_path), address)
    assert_refused(skyctl("delete", "link", "us-eu"), str(state_path), address)

    assert all(path.read_text() == "precious\n" for path in victims), "a file outside the workspace was touched"
    assert not (outside / "marker").exists()
    assert not (workspace / "hooks.log").exists(), "a hook ran"
    assert state_path.read_bytes() == before


def test_the_error_suggests_a_safe_way_to_remove_the_entry(workspace, skyplan, outside):
    (workspace / "links.yaml").write_text(BASIC)
    skyplan("apply", "--auto-approve")
    state_path = workspace / ".skyplan/state.json"
    document = json.loads(state_path.read_text())
    document["resources"].append(hostile_cluster("x; touch marker"))
    state_path.write_text(json.dumps(document))
    result = skyplan("plan")
    assert result.output.rstrip().endswith("remove it: skyplan state rm 'cluster.x; touch marker'")
    assert skyplan("state", "rm", "cluster.x; touch marker").exit_code == 0
    assert skyplan("plan", "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("name", ["x\nPostUp = touch marker", "x\x1b[2J\x1b]0;title\x07fake", "it's\\odd\t"])
def test_a_name_with_control_characters_is_listed_escaped_and_removable_as_suggested(workspace, skyplan, name):
    # Listed raw, a line break would show two entries, and escape sequences would drive the
    # terminal of whoever inspects the shared state; the suggested command must remove it.
    (workspace / "links.yaml").write_text(BASIC)
    skyplan("apply", "--auto-approve")
    state_path = workspace / ".skyplan/state.json"
    document = json.loads(state_path.read_text())
    document["resources"].append(hostile_cluster(name))
    state_path.write_text(json.dumps(document))

    listed = skyplan("state", "list").output
    assert listed.count("\n") == 6 and "\x1b" not in listed and "\t" not in listed, listed
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)
    assert f"cluster.{shown}" in listed.splitlines()

    suggested = skyplan("plan").output.rstrip().rsplit("remove it: ", 1)[1]
    word = subprocess.run(["bash", "-c", f"{suggested.replace('skyplan state rm ', 'printf %s ', 1)}"], capture_output=True, text=True)
    assert word.stdout == f"cluster.{name}", "pasted into a shell, the suggestion names the entry itself"
    removed = skyplan("state", "rm", f"cluster.{name}")
    assert removed.exit_code == 0 and "\x1b" not in removed.output and removed.output.count("\n") == 2
    assert skyplan("plan", "--detailed-exitcode").exit_code == 0


def test_a_hostile_link_end_is_refused(workspace, skyplan, outside):
    (workspace / "links.yaml").write_text(BASIC)
    skyplan("apply", "--auto-approve")
    state_path = workspace / ".skyplan/state.json"
    document = json.loads(state_path.read_text())
    link = next(r for r in document["resources"] if r["name"] == "us-eu")
    forged = copy.deepcopy(link) | {"name": "forged"}
    forged["attributes"]["target"] = CLIMB + "etc"
    document["resources"].append(forged)
    state_path.write_text(json.dumps(document))
    result = skyplan("apply", "--auto-approve")
    assert_refused(result, str(state_path), "link.forged")
    assert "at an end of a link" in result.output and "invalid cluster name" in result.output


# A link's preshared_key decides whether a key is generated and written for the peering, and its
# transit_hub which cluster routes the others' traffic: a third cluster, or text that is no end,
# would send a spoke's traffic where no link says it goes.
HOSTILE_LINK_VALUES = {
    "preshared_key as text": {"preshared_key": "yes"},
    "preshared_key as a key": {"preshared_key": "A" * 43 + "="},
    "preshared_key as a number": {"preshared_key": 1},
    "transit_hub not an end": {"transit_hub": "ap-south"},
    "transit_hub with a directive": {"transit_hub": "us-west\nPostUp = touch marker"},
    "transit_hub not text": {"transit_hub": ["us-west"]},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LINK_VALUES))
def test_a_hostile_link_argument_is_refused_before_anything_uses_it(workspace, skyplan, skyctl, case):
    (workspace / "links.yaml").write_text(hooked_basic())
    assert skyplan("apply", "--auto-approve").exit_code == 0
    state_path = workspace / ".skyplan/state.json"
    document = json.loads(state_path.read_text())
    link = next(r for r in document["resources"] if r["name"] == "us-eu")
    link["attributes"].update(HOSTILE_LINK_VALUES[case])
    state_path.write_text(json.dumps(document, indent=2))
    configs = {p: p.read_bytes() for p in (workspace / "wireguard").rglob("*.conf")}
    (workspace / "hooks.log").unlink()
    before = state_path.read_bytes()

    for command in (("plan",), ("apply", "--auto-approve"), ("destroy", "--auto-approve")):
        assert_refused(skyplan(*command), str(state_path), "link.us-eu")
    assert_refused(skyctl("get", "link"), str(state_path), "link.us-eu")
    assert_refused(skyctl("delete", "link", "us-ap"), str(state_path), "link.us-eu")

    assert {p: p.read_bytes() for p in (workspace / "wireguard").rglob("*.conf")} == configs, "a config was rewritten"
    assert not list(workspace.rglob("*.psk")), "a preshared key was generated"
    assert not (workspace / "marker").exists()
    assert not (workspace / "hooks.log").exists(), "a hook ran"
    assert state_path.read_bytes() == before


def test_the_refusal_names_the_argument_and_why(workspace, skyplan):
    (workspace / "links.yaml").write_text(BASIC)
    skyplan("apply", "--auto-approve")
    state_path = workspace / ".skyplan/state.json"
    document = json.loads(state_path.read_text())
    link = next(r for r in document["resources"] if r["name"] == "us-eu")
    link["attributes"]["transit_hub"] = "ap-south"
    document["resources"].append(hostile_cluster("victim", public_key="A" * 42 + "B="))
    state_path.write_text(json.dumps(document))
    line = skyplan("plan").output.strip()
    assert "holds cluster.victim, which the configuration's rules refuse: public_key: " in line, line
    assert "is not a WireGuard public key" in line and "(and 1 more)" in line


def test_recorded_clusters_without_endpoint_and_with_the_new_arguments_are_accepted(workspace, skyplan, skyctl):
    """A cluster behind NAT records no endpoint; valid keys, pins, preshared keys and transit hubs pass."""
    (workspace / "links.yaml").write_text(BASIC)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    state_path = workspace / ".skyplan/state.json"
    document = json.loads(state_path.read_text())
    nat = hostile_cluster("behind-nat", address="100.96.0.77")
    del nat["attributes"]["endpoint"]
    partner = hostile_cluster("partner", public_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", subnets=["10.67.0.0/16"])
    document["resources"] += [nat, partner]
    link = next(r for r in document["resources"] if r["name"] == "us-eu")
    link["attributes"] |= {"preshared_key": True, "transit_hub": "us-west"}
    state_path.write_text(json.dumps(document))

    listed = skyctl("get", "cluster")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith("behind-nat"))
    assert row.split()[1] == "<none>"
    shown = skyctl("get", "cluster", "partner", "-o", "yaml")
    assert shown.exit_code == 0 and "public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=" in shown.output, shown.output
    assert skyplan("state", "show", "cluster.behind-nat").exit_code == 0
    assert skyctl("get", "link").exit_code == 0


def test_an_old_output_dir_inside_the_workspace_is_still_accepted(workspace, skyplan):
    """Moving configs to a new folder is a normal change: the old folder is in the workspace."""
    (workspace / "links.yaml").write_text(BASIC)
    skyplan("apply", "--auto-approve")
    (workspace / "links.yaml").write_text(BASIC.replace("  address_pool", "  output_dir: configs\n  address_pool"))
    applied = skyplan("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert (workspace / "configs/us-west/wgsky0.conf").exists()
    assert not (workspace / "wireguard/us-west/wgsky0.conf").exists()


def test_the_configurations_own_output_dir_may_be_anywhere(workspace, skyplan, outside):
    (workspace / "links.yaml").write_text(BASIC.replace("  address_pool", f"  output_dir: {outside}\n  address_pool"))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert skyplan("plan", "--detailed-exitcode").exit_code == 0
    assert (outside / "us-west/wgsky0.conf").exists()


# -- a row in the shared PostgreSQL table -------------------------------------------------------------


def _postgres_workspace(workspace: Path, url: str, config: str | None = None) -> str:
    """links.yaml (`config`, else the hooked basic one) with its state in a new workspace of the
    PostgreSQL server at `url`; the workspace's name."""
    name = f"hostile-{uuid.uuid4()}"
    text = hooked_basic() if config is None else config
    (workspace / "links.yaml").write_text(text + f"backend:\n  type: postgres\n  url: '{url}'\n  workspace: {name}\n")
    return name


def _edit_row(url: str, name: str, edit) -> dict:
    """Change the stored document as someone with write access to the table would."""
    with psycopg.connect(url, autocommit=True) as conn:
        (document,) = conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = %s", [name]).fetchone()
        edit(document)
        conn.execute(f"UPDATE {STATES_TABLE} SET state = %s WHERE workspace = %s", [json.dumps(document), name])
    return document


@pytest.mark.postgres
@pytest.mark.parametrize(
    "case", ["name climbing out", "output_dir outside", "computed key with a directive", "public_key with a directive"]
)
def test_a_hostile_row_in_postgresql_stops_every_command(workspace, skyplan, skyctl, postgres_url, outside, case, monkeypatch):
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    name = _postgres_workspace(workspace, postgres_url)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    entry = hostile_entry(case, outside)
    stored = _edit_row(postgres_url, name, lambda document: document["resources"].append(entry))
    victims = victims_for(entry, outside)
    plant_victims(victims)
    (workspace / "hooks.log").unlink()
    where = f'{postgres_url} (workspace "{name}")'
    address = f"cluster.{entry['name']}"

    for command in (("plan",), ("apply", "--auto-approve"), ("destroy", "--auto-approve")):
        assert_refused(skyplan(*command), where, address)
    assert_refused(skyctl("get", "cluster"), where, address)
    assert_refused(skyctl("create", "link", "eu-ap", "-s", "eu-central", "-t", "ap-south"), where, address)

    assert all(path.read_text() == "precious\n" for path in victims), "a file outside the workspace was touched"
    assert not (outside / "marker").exists()
    assert not (workspace / "hooks.log").exists(), "a hook ran"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        (now,) = conn.execute(f"SELECT state FROM {STATES_TABLE} WHERE workspace = %s", [name]).fetchone()
    assert now == stored, "the state was written"
