"""A key file that a pull request adds never becomes a new cluster's private key.

The attacker commits `.skyplan/keys/<new cluster>.key` (git checks it out 0644) next to a change
of links.yaml that adds the cluster: if apply adopted the file, its author would hold the key
that the cluster's peers trust.
"""

from __future__ import annotations

import json
import os

import pytest

from skyplan_wireguard import keys
from tests.workspaces import BASIC

NEW_CLUSTER = BASIC.replace(
    "links:\n",
    "  - name: eu-west\n    endpoint: 192.0.2.9:51820\n    subnets: [10.40.0.0/16]\nlinks:\n",
) + "  - name: us-euw\n    source: us-west\n    target: eu-west\n"


def recorded_public_key(workspace, name):
    state = json.loads((workspace / ".skyplan/state.json").read_text())
    found = [r for r in state["resources"] if r["type"] == "cluster" and r["name"] == name]
    return found[0]["computed"].get("public_key") if found else None


def test_a_key_file_checked_out_from_the_repository_is_not_adopted(basic, skyplan):
    skyplan("apply", "--auto-approve")
    planted = keys.generate()
    key_file = basic / ".skyplan/keys/eu-west.key"
    key_file.write_text(planted + "\n")
    os.chmod(key_file, 0o644)  # as git checks files out
    (basic / "links.yaml").write_text(NEW_CLUSTER)

    result = skyplan("apply", "--auto-approve")

    assert result.exit_code == 1
    assert "eu-west.key is readable by others (mode 0644)" in result.output
    assert planted not in result.output
    assert recorded_public_key(basic, "eu-west") in (None, ""), "the planted key must not reach the state"
    peers = (basic / "wireguard/us-west/wgsky0.conf").read_text()
    assert keys.public_key(planted) not in peers, "no peer may trust the planted key"
    assert key_file.read_text() == planted + "\n", "the file is named, never overwritten"

    # Deleted, as the message says: the next apply generates a key of its own.
    key_file.unlink()
    assert skyplan("apply", "--auto-approve").exit_code == 0
    own = (basic / ".skyplan/keys/eu-west.key").read_text().strip()
    assert own != planted and recorded_public_key(basic, "eu-west") == keys.public_key(own)


def test_a_private_key_file_left_behind_is_still_reused(basic, skyplan):
    # `state rm` (or an interrupted create) leaves the cluster's own 0600 key file: a create reuses it.
    skyplan("apply", "--auto-approve")
    own = (basic / ".skyplan/keys/ap-south.key").read_text()
    assert skyplan("state", "rm", "link.us-ap", "cluster.ap-south").exit_code == 0
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert (basic / ".skyplan/keys/ap-south.key").read_text() == own
    assert recorded_public_key(basic, "ap-south") == keys.public_key(own.strip())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_key_file_of_another_user_is_not_adopted(basic, skyplan):
    skyplan("apply", "--auto-approve")
    planted = keys.generate()
    key_file = basic / ".skyplan/keys/eu-west.key"
    key_file.write_text(planted + "\n")
    os.chmod(key_file, 0o600)
    os.chown(key_file, 65534, 65534)
    (basic / "links.yaml").write_text(NEW_CLUSTER)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1 and "eu-west.key is not yours" in result.output
    assert recorded_public_key(basic, "eu-west") in (None, "")


def test_a_skyctl_create_refused_for_a_planted_key_is_finished_by_repeating_it(basic, skyplan, skyctl):
    skyplan("apply", "--auto-approve")
    key_file = basic / ".skyplan/keys/edge.key"
    planted = keys.generate()
    key_file.write_text(planted + "\n")
    os.chmod(key_file, 0o644)
    refused = skyctl("create", "cluster", "edge", "--endpoint", "192.0.2.77:51820")
    assert refused.exit_code == 1 and "edge.key is readable by others" in refused.output
    assert recorded_public_key(basic, "edge") in (None, "")

    # Before the cluster has a key, only a create can finish it: the same create, never "already exists".
    other = skyctl("create", "cluster", "edge", "--endpoint", "192.0.2.78:51820")
    assert other.exit_code == 1 and "a failed create of it with endpoint 192.0.2.77:51820" in other.output
    key_file.unlink()
    again = skyctl("create", "cluster", "edge", "--endpoint", "192.0.2.77:51820")
    assert again.exit_code == 0 and "Created cluster edge." in again.output
    own = key_file.read_text().strip()
    assert own != planted and recorded_public_key(basic, "edge") == keys.public_key(own)
    assert skyctl("create", "link", "us-edge", "-s", "us-west", "-t", "edge").exit_code == 0
    assert skyctl("create", "cluster", "edge", "--endpoint", "192.0.2.77:51820").output == "Error: Cluster 'edge' already exists.\n"


def test_a_link_to_a_cluster_whose_create_failed_finishes_that_create(basic, skyplan, skyctl):
    skyplan("apply", "--auto-approve")
    key_file = basic / ".skyplan/keys/edge.key"
    key_file.symlink_to(basic / "elsewhere.key")
    assert skyctl("create", "cluster", "edge", "--endpoint", "192.0.2.77:51820").exit_code == 1
    key_file.unlink()
    linked = skyctl("create", "link", "us-edge", "-s", "us-west", "-t", "edge")
    assert linked.exit_code == 0 and "Created link us-edge." in linked.output
    public = keys.public_key(key_file.read_text().strip())
    assert recorded_public_key(basic, "edge") == public
    assert f"PublicKey = {public}" in (basic / "wireguard/us-west/wgsky0.conf").read_text()
    assert skyctl("delete", "link", "us-edge").exit_code == 0 and skyctl("delete", "cluster", "edge").exit_code == 0
