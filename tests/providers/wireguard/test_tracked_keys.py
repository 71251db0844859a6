"""Key files that a pull request adds or changes: git tracks them, so skyplan never takes them.

Checked out under umask 077, a key file from a commit is 0600 and the user's own, just like one
skyplan wrote; only git can tell that it came from the repository, whose authors know the key.
"""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from skyplan_wireguard import keys, psk
from tests.workspaces import links_yaml

TWO = [("a", "192.0.2.1:51820", ["10.1.0.0/16"]), ("b", "192.0.2.2:51820", ["10.2.0.0/16"])]
THREE = [*TWO, ("c", "192.0.2.3:51820", ["10.3.0.0/16"])]
LINK = [("a-b", "a", "b")]


def git(workspace, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=pr", "-c", "user.email=pr@example.org", *args],
        cwd=workspace, check=True, capture_output=True,
    )


@pytest.fixture
def repository(workspace):
    """The workspace as a repository checkout, links.yaml committed, keys (as usual) not."""
    git(workspace, "init", "-q")
    return workspace


def plant(workspace, relative: str, text: str) -> None:
    """What checking out a pull request that adds `relative` under umask 077 leaves behind."""
    path = workspace / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    os.chmod(path, 0o600)
    git(workspace, "add", "-f", relative)
    git(workspace, "commit", "-q", "-m", "add a key")


def configs(workspace) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted(workspace.glob("wireguard/*/wgsky0.conf"))}


def test_a_preshared_key_changed_by_a_commit_is_never_written_into_configs(repository, skyplan):
    workspace = repository
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK, provider="preshared_keys: true"))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    before = configs(workspace)
    attacker = base64.b64encode(b"k" * 32).decode("ascii")
    plant(workspace, ".skyplan/keys/a+b.psk", attacker)

    for command in (("plan",), ("apply", "--auto-approve")):
        result = skyplan(*command)
        assert result.exit_code == 1, result.output
        assert "a+b.psk is tracked by git" in result.output and "git rm --cached" in result.output
        assert attacker not in result.output
    assert configs(workspace) == before, "a config now holds the key from the commit"
    assert all(attacker not in text for text in configs(workspace).values())


def test_a_preshared_key_added_by_a_commit_for_a_new_peering_is_not_taken(repository, skyplan):
    workspace = repository
    (workspace / "links.yaml").write_text(links_yaml(TWO, []))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    attacker = base64.b64encode(b"q" * 32).decode("ascii")
    plant(workspace, ".skyplan/keys/a+b.psk", attacker)
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK, provider="preshared_keys: true"))

    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "a+b.psk is tracked by git" in result.output
    assert all(attacker not in text for text in configs(workspace).values())


def test_a_private_key_added_by_a_commit_is_not_adopted(repository, skyplan):
    workspace = repository
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    attacker = keys.generate()
    plant(workspace, ".skyplan/keys/c.key", attacker)
    (workspace / "links.yaml").write_text(links_yaml(THREE, [*LINK, ("a-c", "a", "c")]))

    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "c.key is tracked by git" in result.output and "--replace cluster.c" in result.output
    assert keys.public_key(attacker) not in (workspace / "wireguard/a/wgsky0.conf").read_text()
    assert not (workspace / "wireguard/c").exists()


def test_keys_skyplan_wrote_in_a_checkout_are_used_as_ever(repository, skyplan):
    # Untracked (as .skyplan/ is kept out of repositories): the same workspace plans no change.
    workspace = repository
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK, provider="preshared_keys: true"))
    git(workspace, "add", "links.yaml")
    git(workspace, "commit", "-q", "-m", "links")
    assert skyplan("apply", "--auto-approve").exit_code == 0
    result = skyplan("plan")
    assert result.exit_code == 0 and "No changes." in result.output, result.output
    assert psk.read(workspace / ".skyplan/keys/a+b.psk", workspace) is not None


def test_a_new_clusters_key_file_hard_linked_to_another_clusters_key_is_not_adopted(workspace, skyplan):
    # Both 0600 and yours: only the second name tells that c would run with a's key.
    (workspace / "links.yaml").write_text(links_yaml(TWO, LINK))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    os.link(workspace / ".skyplan/keys/a.key", workspace / ".skyplan/keys/c.key")
    (workspace / "links.yaml").write_text(links_yaml(THREE, [*LINK, ("a-c", "a", "c")]))

    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "c.key has other names (hard links)" in result.output
    assert not (workspace / "wireguard/c").exists()
    a_public = keys.public_key((workspace / ".skyplan/keys/a.key").read_text().strip())
    assert skyplan("state", "show", "cluster.c").output.count(a_public) == 0
