"""`skyplan import` attacked as a user's own files could attack it: what must NOT happen."""

from __future__ import annotations

import json
import os
from pathlib import Path

from skyplan_wireguard import keys

from .confs import write_hub_and_spoke

SECRET = "hunter2-db-password"


def _tree(workspace: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(workspace)): (p.read_bytes() if p.is_file() else None) for p in sorted(workspace.rglob("*"))}


def test_a_conf_symlinked_into_a_secret_file_has_nothing_of_it_quoted(skyplan, workspace: Path) -> None:
    key = keys.generate()
    secret = workspace / "secrets.env"
    secret.write_text(f"[Interface]\nPASSWORD = {SECRET}\nPrivateKey = {key}=x\nAPI_TOKEN={key}\n{key}\n")
    os.symlink(secret, workspace / "wg0.conf")
    before = _tree(workspace)
    result = skyplan("import", "wg0.conf", "--auto-approve")
    assert result.exit_code == 1
    assert "wg0.conf:2: this line is not a wg-quick directive" in result.output
    assert "wg0.conf:3: PrivateKey is not a WireGuard key" in result.output
    assert SECRET not in result.output and key not in result.output and key[:20] not in result.output
    assert "PASSWORD" not in result.output and "API_TOKEN" not in result.output
    assert _tree(workspace) == before


def test_a_huge_file_is_refused_unread(skyplan, workspace: Path) -> None:
    huge = workspace / "big.conf"
    with huge.open("w") as handle:
        handle.write("[Interface]\n")
        handle.write("# padding\n" * 300_000)
    result = skyplan("import", "big.conf")
    assert result.exit_code == 1
    assert "big.conf: is 3000012 bytes; the limit is 1048576" in result.output
    assert not (workspace / "links.yaml").exists()


def test_a_device_or_folder_is_refused(skyplan, workspace: Path) -> None:
    (workspace / "folder.conf").mkdir()
    result = skyplan("import", "folder.conf", "/dev/zero")
    assert result.exit_code == 1
    assert "folder.conf: is a directory, not a configuration file" in result.output
    assert "/dev/zero: is not a regular file" in result.output


def test_a_value_cannot_smuggle_a_line_into_links_yaml(skyplan, workspace: Path) -> None:
    files = write_hub_and_spoke(workspace / "etc", hub_endpoint="192.0.2.11:51820#\nPostUp = touch /tmp/owned")
    result = skyplan("import", *map(str, files.files))
    # '#' starts a comment, as wg-quick reads it; the next line is a PostUp of the spoke's own
    # [Peer] section, where wg-quick would not take it either.
    assert result.exit_code == 1
    assert f"{files.files[1]}:11: PostUp does not belong in a [Peer] section" in result.output
    assert not (workspace / "links.yaml").exists()


def test_an_existing_configuration_is_never_written_over(skyplan, workspace: Path) -> None:
    files = write_hub_and_spoke(workspace / "etc")
    (workspace / "links.yaml").write_text("# mine\n")
    before = _tree(workspace)
    result = skyplan("import", *map(str, files.files), "--auto-approve")
    assert result.exit_code == 1
    assert "links.yaml: exists already; import never writes over a configuration" in result.output
    assert _tree(workspace) == before


def test_a_dangling_symlink_in_place_of_the_configuration_is_not_followed(skyplan, workspace: Path) -> None:
    files = write_hub_and_spoke(workspace / "etc")
    os.symlink(workspace / "elsewhere.yaml", workspace / "links.yaml")
    result = skyplan("import", *map(str, files.files), "--auto-approve")
    assert result.exit_code == 1
    assert not (workspace / "elsewhere.yaml").exists()
    assert not (workspace / ".skyplan").exists()


def test_a_state_that_holds_resources_is_never_added_to(skyplan, basic: Path) -> None:
    assert skyplan("apply", "--auto-approve").exit_code == 0
    os.rename(basic / "links.yaml", basic / "old.yaml")
    state_before = (basic / ".skyplan" / "state.json").read_bytes()
    keys_before = sorted(p.name for p in (basic / ".skyplan" / "keys").iterdir())
    files = write_hub_and_spoke(basic / "etc")
    result = skyplan("import", *map(str, files.files), "--auto-approve")
    assert result.exit_code == 1
    assert "already holds" in result.output and "import starts a workspace and never adds to one" in result.output
    assert (basic / ".skyplan" / "state.json").read_bytes() == state_before
    assert sorted(p.name for p in (basic / ".skyplan" / "keys").iterdir()) == keys_before
    assert not (basic / "links.yaml").exists()


def test_a_planted_key_file_is_not_written_over_and_nothing_is_written(skyplan, workspace: Path) -> None:
    files = write_hub_and_spoke(workspace / "etc")
    planted = workspace / ".skyplan" / "keys" / "hub.key"
    planted.parent.mkdir(parents=True)
    planted.write_text(keys.generate() + "\n")
    result = skyplan("import", *map(str, files.files), "--auto-approve")
    assert result.exit_code == 1
    assert "hub.key: exists already; import writes no key over another" in result.output
    assert sorted(p.name for p in planted.parent.iterdir()) == ["hub.key"]
    assert not (workspace / "links.yaml").exists() and not (workspace / ".skyplan" / "state.json").exists()


def test_secrets_reach_only_the_key_store(skyplan, workspace: Path) -> None:
    files = write_hub_and_spoke(workspace / "etc")
    result = skyplan("import", *map(str, files.files), "--auto-approve")
    assert result.exit_code == 0
    secrets = [*files.private.values(), files.preshared]
    holding = sorted(
        str(p.relative_to(workspace))
        for p in workspace.rglob("*")
        if p.is_file() and "etc" not in p.parts and any(s in p.read_text() for s in secrets)
    )
    assert holding == [".skyplan/keys/hub+spoke1.psk", ".skyplan/keys/hub.key", ".skyplan/keys/spoke1.key", ".skyplan/keys/spoke2.key"]
    plan = skyplan("plan", "--json").output
    assert not any(s in plan for s in secrets)
    json.loads(plan)
