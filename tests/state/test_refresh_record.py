"""The sealed record of the last refresh that found no drift (state/refreshed.py and the WireGuard
provider's use of it): a plan of an unchanged world derives no key and renders no config, and
nothing that changed since gets past a refresh because of it.

Written as the attacker (or the hand editor) would: a config or key file changed after a plan
recorded the world as clean, a record planted without the user's secret or copied from another
workspace, the state edited. Each test asserts that the plan finds exactly what it finds with no
record at all.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from skyplan.state import refreshed
from tests.workspaces import BASIC

RECORD = Path(".skyplan/cache") / refreshed.RECORD
CONFIG = Path("wireguard/us-west/wgsky0.conf")
KEY = Path(".skyplan/keys/us-west.key")


@pytest.fixture
def work(monkeypatch) -> list[str]:
    """What the refresh worked out again: a public key derived, or a config rendered to compare."""
    from skyplan_wireguard import conf, keys

    done: list[str] = []
    derive, render = keys.public_key, conf.render
    monkeypatch.setattr(keys, "public_key", lambda private: done.append("derive") or derive(private))
    monkeypatch.setattr(conf, "render", lambda *a, **k: done.append("render") or render(*a, **k))
    return done


def plan_text(skyplan) -> str:
    result = skyplan("plan", "--no-color")
    assert result.exit_code == 0, result.output
    return result.output


def test_a_plan_of_an_unchanged_world_works_out_nothing_again(applied: Path, skyplan, work) -> None:
    first = plan_text(skyplan)
    assert "No changes." in first and RECORD.exists()
    assert work.count("derive") == 3 and work.count("render") == 3, "the first plan after an apply checks everything"
    work.clear()
    second = plan_text(skyplan)
    assert second == first
    assert work == [], "the second plan of the same world and files trusts the record"
    assert RECORD.stat().st_mode & 0o777 == 0o600


def test_the_record_holds_no_secret(workspace: Path, skyplan) -> None:
    (workspace / "links.yaml").write_text(BASIC.replace("address_pool: 100.96.0.0/16", "address_pool: 100.96.0.0/16\n  preshared_keys: true"))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert "No changes." in plan_text(skyplan)
    record = RECORD.read_bytes()
    secrets = [p.read_text().strip() for p in Path(".skyplan/keys").iterdir()]
    assert len(secrets) == 5  # three private keys and two preshared keys
    for secret in secrets:
        assert secret.encode() not in record
        assert base64.b64decode(secret).hex().encode() not in record


# Each way the world can change behind skyplan's back after a clean plan was recorded, and what
# the plan must then show (as it does with no record).
def _edit_endpoint(root: Path) -> None:
    path = root / CONFIG
    path.write_text(path.read_text().replace("198.51.100.20:51820", "198.51.100.21:51820"))


def _add_a_peer(root: Path) -> None:
    path = root / CONFIG
    path.write_text(path.read_text() + "\n[Peer]\nPublicKey = " + "C" * 43 + "=\nAllowedIPs = 0.0.0.0/0\n")


def _same_length_edit(root: Path) -> None:
    # One byte of the file changed, its size kept: what a size or time check would miss.
    path = root / CONFIG
    text = path.read_text()
    path.write_text(text.replace(", 10.20.0.0/16", ", 10.21.0.0/16"))
    assert len(path.read_text()) == len(text) and path.read_text() != text


def _another_key(root: Path) -> None:
    from skyplan_wireguard import keys

    (root / KEY).write_text(keys.generate_pair()[0] + "\n")


def _delete_config(root: Path) -> None:
    (root / CONFIG).unlink()


def _delete_key(root: Path) -> None:
    (root / KEY).unlink()


def _garble_key(root: Path) -> None:
    (root / KEY).write_text("not a key\n")


DRIFTS = {
    "endpoint edited": (_edit_endpoint, 0, "Changed outside skyplan"),
    "peer added": (_add_a_peer, 0, "Changed outside skyplan"),
    "one byte changed, same length": (_same_length_edit, 0, "Changed outside skyplan"),
    "key file holds another key": (_another_key, 1, "holds public key"),
    "config deleted": (_delete_config, 0, "was deleted"),
    "key file deleted": (_delete_key, 0, "is missing"),
    "key file garbled": (_garble_key, 1, "does not hold a WireGuard private key"),
}


def _shown(result) -> str:
    # The drift a plan shows, without the lines that name this run's temporary folder.
    return re.sub(r"/tmp/\S+", "<tmp>", result.output)


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_a_change_made_after_a_clean_plan_was_recorded_is_found_as_without_the_record(applied: Path, skyplan, drift: str) -> None:
    change, code, shown = DRIFTS[drift]
    assert "No changes." in plan_text(skyplan) and RECORD.exists()
    change(applied)
    with_record = skyplan("plan", "--no-color")
    assert with_record.exit_code == code and shown in with_record.output, with_record.output
    RECORD.unlink()
    without = skyplan("plan", "--no-color")
    assert (without.exit_code, _shown(without)) == (with_record.exit_code, _shown(with_record))


def test_a_preshared_key_changed_after_a_clean_plan_is_found(workspace: Path, skyplan) -> None:
    (workspace / "links.yaml").write_text(BASIC.replace("address_pool: 100.96.0.0/16", "address_pool: 100.96.0.0/16\n  preshared_keys: true"))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert "No changes." in plan_text(skyplan) and RECORD.exists()
    from skyplan_wireguard import keys

    stored = sorted(Path(".skyplan/keys").glob("*.psk"))[0]
    stored.write_text(base64.b64encode(bytes(range(1, 33))).decode() + "\n")
    assert keys  # the key file's mode (0600) is kept by write_text
    result = skyplan("plan", "--no-color")
    assert result.exit_code == 0 and "Changed outside skyplan" in result.output, result.output


def test_a_plan_that_finds_drift_records_nothing(applied: Path, skyplan, work) -> None:
    _add_a_peer(applied)
    assert "Changed outside skyplan" in skyplan("plan", "--no-color").output
    assert not RECORD.exists()


def test_a_record_forged_without_the_users_secret_is_not_believed(applied: Path, skyplan, work) -> None:
    from skyplan import seal

    assert "No changes." in plan_text(skyplan)
    body = seal.unseal("refresh", RECORD.read_bytes(), applied)
    assert body is not None
    # The attacker knows the whole body (the world's key and the files' digest, before the edit
    # they then make), and seals it with a secret of their own, or none.
    _add_a_peer(applied)
    for forged in (b"skyplan-sealed-1 " + b"0" * 64 + b"\n" + body,
                   b"skyplan-sealed-1 " + seal._mac(b"\x01" * seal.SECRET_BYTES, "refresh", body).encode() + b"\n" + body):
        RECORD.write_bytes(forged)
        work.clear()
        result = skyplan("plan", "--no-color")
        assert "Changed outside skyplan" in result.output and "render" in work


def test_a_record_made_for_another_state_is_not_believed(applied: Path, skyplan, work) -> None:
    assert "No changes." in plan_text(skyplan)
    clean = RECORD.read_bytes()
    # The state changes (another link), the files follow; the old record is put back after a drift.
    config = applied / "links.yaml"
    config.write_text(config.read_text() + "  - name: eu-ap\n    source: eu-central\n    target: ap-south\n")
    assert skyplan("apply", "--auto-approve").exit_code == 0
    _add_a_peer(applied)
    RECORD.write_bytes(clean)
    work.clear()
    assert "Changed outside skyplan" in skyplan("plan", "--no-color").output and work


def test_a_record_copied_from_another_workspace_is_not_believed(applied: Path, skyplan, work, tmp_path_factory, monkeypatch) -> None:
    import shutil

    other = tmp_path_factory.mktemp("other") / "ws"
    shutil.copytree(applied, other, symlinks=True)
    monkeypatch.chdir(other)
    assert "No changes." in plan_text(skyplan)
    record = (other / RECORD).read_bytes()
    monkeypatch.chdir(applied)
    _add_a_peer(applied)
    (applied / RECORD).parent.mkdir(parents=True, exist_ok=True)
    (applied / RECORD).write_bytes(record)
    work.clear()
    assert "Changed outside skyplan" in skyplan("plan", "--no-color").output and work


def test_an_edited_state_is_refreshed_in_full(applied: Path, skyplan, work) -> None:
    assert "No changes." in plan_text(skyplan)
    path = applied / ".skyplan" / "state.json"
    document = json.loads(path.read_text())
    link = next(r for r in document["resources"] if r["type"] == "link")
    link["attributes"]["target"], link["attributes"]["source"] = link["attributes"]["source"], link["attributes"]["target"]
    path.write_text(json.dumps(document, indent=2) + "\n")
    work.clear()
    skyplan("plan", "--no-color")
    assert "render" in work


def test_moved_entries_already_made_keep_the_record_in_use(applied: Path, skyplan, work) -> None:
    config = applied / "links.yaml"
    text = config.read_text().replace("name: ap-south", "name: ap-east").replace("target: ap-south", "target: ap-east")
    config.write_text(text + "moved:\n  - from: cluster.ap-south\n    to: cluster.ap-east\n")
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert "No changes." in plan_text(skyplan)
    work.clear()
    assert "No changes." in plan_text(skyplan)
    assert work == []


def test_a_planted_symlink_for_the_cache_is_neither_read_nor_written_through(applied: Path, skyplan, tmp_path_factory) -> None:
    import os

    elsewhere = tmp_path_factory.mktemp("elsewhere")
    assert "No changes." in plan_text(skyplan)
    (applied / ".skyplan" / "cache").rename(elsewhere / "cache")
    os.symlink(elsewhere / "cache", applied / ".skyplan" / "cache")
    before = {p.name: p.read_bytes() for p in (elsewhere / "cache").iterdir()}
    _add_a_peer(applied)
    result = skyplan("plan", "--no-color")
    assert "Changed outside skyplan" in result.output or result.exit_code == 1
    assert {p.name: p.read_bytes() for p in (elsewhere / "cache").iterdir()} == before


def test_a_store_that_cannot_tell_its_bytes_plans_without_a_record(applied: Path, skyplan, work, monkeypatch) -> None:
    # StateStore.read_digest: None when "a store cannot tell" which bytes it read. Such a state
    # has no world key: it is refreshed in full every time, and the plan still works.
    from skyplan.state.local import FileStateStore

    read = FileStateStore.read

    def read_without_digest(self):
        state = read(self)
        self.read_digest = None
        return state

    monkeypatch.setattr(FileStateStore, "read", read_without_digest)
    for _ in range(2):
        work.clear()
        assert "No changes." in plan_text(skyplan)
        assert "render" in work
    assert not RECORD.exists()


# The README's layout with every topology the local refresh knows (a hub behind which spokes
# reach each other, a cluster behind NAT, a pinned address, an external peer, preshared keys),
# in the workspace or with its output folder outside it: a change made after a clean plan was
# recorded is found exactly as without the record, and the record is in use for that world.
HUB_NAT = Path(__file__).parents[2] / "examples" / "hub-nat" / "links.yaml"


def _replace_in(name: str, old: str, new: str):
    def change(out: Path) -> None:
        path = out / name / "wgsky0.conf"
        text = path.read_text()
        assert old in text, text
        path.write_text(text.replace(old, new, 1))

    return change


def _psk_file(keys: Path) -> None:
    stored = sorted(keys.glob("*.psk"))[0]
    stored.write_text(base64.b64encode(bytes(range(3, 35))).decode() + "\n")


TOPOLOGY_DRIFTS = {
    "hub forwards no more": (_replace_in("hub", "PostUp = sysctl -q -w net.ipv4.ip_forward=1\n", ""), "Changed outside skyplan"),
    "spoke's route through the hub dropped": (_replace_in("store-1", ", 10.2.0.0/16", ""), "Changed outside skyplan"),
    "external peer's key swapped in the hub": (
        _replace_in("hub", "q7RZzfswVldTExcjy4GVVTSCzmT5vHfTBph+Lhi/Cic=", "C" * 43 + "="),
        "Changed outside skyplan",
    ),
    "keepalive of the NAT cluster": (_replace_in("store-1", "PersistentKeepalive = 15", "PersistentKeepalive = 16"), "Changed outside skyplan"),
    "preshared key in a config": (_replace_in("store-2", "PresharedKey = ", "PresharedKey = A"), "Changed outside skyplan"),
}


@pytest.mark.parametrize("outside", [False, True], ids=["output in the workspace", "output_dir outside"])
@pytest.mark.parametrize("drift", sorted(TOPOLOGY_DRIFTS) + ["stored preshared key"])
def test_every_topology_is_refreshed_as_without_the_record(workspace: Path, skyplan, work, tmp_path_factory, drift: str, outside: bool) -> None:
    text = HUB_NAT.read_text()
    out = workspace / "wireguard"
    if outside:
        out = tmp_path_factory.mktemp("elsewhere") / "wg"
        text = text.replace("  preshared_keys: true\n", f"  preshared_keys: true\n  output_dir: {out}\n")
    (workspace / "links.yaml").write_text(text)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert "No changes." in plan_text(skyplan) and RECORD.exists()
    work.clear()
    assert "No changes." in plan_text(skyplan) and work == [], "the record is in use for this world"
    if drift == "stored preshared key":
        _psk_file(workspace / ".skyplan" / "keys")
        shown = "Changed outside skyplan"
    else:
        change, shown = TOPOLOGY_DRIFTS[drift]
        change(out)
    with_record = skyplan("plan", "--no-color")
    assert with_record.exit_code == 0 and shown in with_record.output, with_record.output
    RECORD.unlink()
    without = skyplan("plan", "--no-color")
    assert (without.exit_code, _shown(without)) == (with_record.exit_code, _shown(with_record))


@pytest.mark.postgres
def test_a_shared_state_changed_by_another_writer_is_refreshed_in_full(workspace: Path, skyplan, work, postgres_url) -> None:
    # The state lives in PostgreSQL, which others write: one edits this workspace's row in place
    # (the recorded endpoint of eu-central, which us-west's file names), serial and all as before.
    from tests.state.test_hostile_state import _edit_row, _postgres_workspace

    name = _postgres_workspace(workspace, postgres_url, BASIC)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert "No changes." in plan_text(skyplan)
    work.clear()
    assert "No changes." in plan_text(skyplan) and work == [], "the record is in use for a state in PostgreSQL"

    def edit(document: dict) -> None:
        cluster = next(r for r in document["resources"] if (r["type"], r["name"]) == ("cluster", "eu-central"))
        assert cluster["attributes"]["endpoint"] == "198.51.100.20:51820"
        cluster["attributes"]["endpoint"] = "198.51.100.21:51820"

    _edit_row(postgres_url, name, edit)
    work.clear()
    with_record = skyplan("plan", "--no-color")
    assert "render" in work, "a state of other bytes is another world"
    RECORD.unlink()
    without = skyplan("plan", "--no-color")
    assert (without.exit_code, _shown(without)) == (with_record.exit_code, _shown(with_record))
    assert "198.51.100.21" in with_record.output or with_record.exit_code != 0, with_record.output


@pytest.mark.parametrize(
    "command",
    [
        ["plan", "--target", "link.us-ap"],
        ["plan", "--exclude", "cluster.ap-south"],
        ["plan", "--replace", "cluster.ap-south"],
        ["plan", "--destroy"],
        ["plan", "--no-refresh"],
    ],
    ids=" ".join,
)
def test_each_way_of_planning_sees_a_change_as_without_the_record(applied: Path, skyplan, command: list[str]) -> None:
    assert "No changes." in plan_text(skyplan) and RECORD.exists()
    _add_a_peer(applied)
    with_record = skyplan(*command, "--no-color")
    RECORD.unlink()
    without = skyplan(*command, "--no-color")
    assert (without.exit_code, _shown(without)) == (with_record.exit_code, _shown(with_record))
    assert ("Changed outside skyplan" in with_record.output) == ("--no-refresh" not in command), with_record.output


def test_an_apply_after_a_clean_plan_puts_back_a_changed_file(applied: Path, skyplan) -> None:
    written = (applied / CONFIG).read_bytes()
    assert "No changes." in plan_text(skyplan) and RECORD.exists()
    _add_a_peer(applied)
    result = skyplan("apply", "--auto-approve", "--no-color")
    assert result.exit_code == 0 and "Changed outside skyplan" in result.output, result.output
    assert (applied / CONFIG).read_bytes() == written
    assert "No changes." in plan_text(skyplan)


def test_a_move_an_interrupted_run_left_unfinished_is_refreshed_in_full_every_time(applied: Path, skyplan, work) -> None:
    # Its files may be under either name: the refresh looks under both, which no record vouches for.
    path = applied / ".skyplan" / "state.json"
    document = json.loads(path.read_text())
    cluster = next(r for r in document["resources"] if r["type"] == "cluster" and r["name"] == "us-west")
    cluster["moved_from"] = "us-old"
    path.write_text(json.dumps(document, indent=2) + "\n")
    outputs = []
    for _ in range(2):
        work.clear()
        outputs.append(_shown(skyplan("plan", "--no-color")))
        assert "render" in work
    assert outputs[0] == outputs[1]
