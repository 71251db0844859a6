"""skyctl through CliRunner: SkyShift's own link CLI cases, ported, and skyplan's additions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from skyplan import __version__
from tests.workspaces import links_yaml


@pytest.fixture
def clusters(workspace, skyctl):
    """An empty folder (no links.yaml) where cluster1 and cluster2 were registered with skyctl."""
    assert skyctl("create", "cluster", "cluster1", "--endpoint", "192.0.2.1:51820", "--subnet", "10.1.0.0/16").exit_code == 0
    assert skyctl("create", "cluster", "cluster2", "--endpoint", "192.0.2.2:51820", "--subnet", "10.2.0.0/16").exit_code == 0
    return workspace


def state(workspace: Path) -> dict:
    return json.loads((workspace / ".skyplan/state.json").read_text())


# -- SkyShift's link cases (skyshift/tests/test_cli.py), with the same assertions ---------------


def test_create_link_success(clusters, skyctl):
    result = skyctl("create", "link", "valid-link", "--source", "cluster1", "--target", "cluster2")
    assert result.exit_code == 0
    assert "valid-link" in result.output


def test_create_link_with_duplicate_names(clusters, skyctl):
    first = skyctl("create", "link", "duplicate-name-link", "--source", "cluster1", "--target", "cluster2")
    second = skyctl("create", "link", "duplicate-name-link", "--source", "cluster2", "--target", "cluster1")
    assert first.exit_code == 0
    assert "Created link" in first.output
    assert second.exit_code != 0
    assert "already exists" in second.output


@pytest.mark.parametrize(
    "source, target",
    [
        ("nonexistent-cluster1", "cluster2"),
        ("cluster1", "nonexistent-cluster2"),
        ("nonexistent-cluster1", "nonexistent-cluster2"),
        ("", "cluster2"),
        ("cluster1", ""),
    ],
)
def test_create_link_nonexistent_clusters(clusters, skyctl, source, target):
    before = (clusters / ".skyplan/state.json").read_bytes()
    result = skyctl("create", "link", "invalid-link", "--source", source, "--target", target)
    assert result.exit_code != 0
    assert "not found" in result.output or "Invalid" in result.output or "Missing option" in result.output
    assert (clusters / ".skyplan/state.json").read_bytes() == before


@pytest.mark.parametrize("name", [" ", "!"])
def test_create_link_with_invalid_names(clusters, skyctl, name):
    result = skyctl("create", "link", name, "--source", "cluster1", "--target", "cluster2")
    assert result.exit_code != 0
    assert "is invalid" in result.output
    assert f"Link name '{name}' is invalid: 1 to 63 characters" in result.output


def test_create_link_missing_source_or_target(clusters, skyctl):
    without_source = skyctl("create", "link", "link-missing-details", "--target", "cluster2")
    without_target = skyctl("create", "link", "link-missing-details", "--source", "cluster1")
    assert without_source.exit_code != 0 and without_target.exit_code != 0
    assert "Missing option '-s' / '--source'" in without_source.output
    assert "Missing option '-t' / '--target'" in without_target.output


def test_create_link_same_source_target(clusters, skyctl):
    result = skyctl("create", "link", "self-link", "--source", "cluster1", "--target", "cluster1")
    assert result.exit_code != 0
    assert "Source and target clusters cannot be the same." in result.output


def test_get_specific_link_shows_init(clusters, skyctl):
    skyctl("create", "link", "valid-link", "-s", "cluster1", "-t", "cluster2")
    result = skyctl("get", "link", "valid-link")
    assert result.exit_code == 0
    assert "valid-link" in result.output
    assert "INIT" in result.output


def test_get_all_links(clusters, skyctl):
    assert skyctl("get", "link").exit_code == 0


def test_delete_link_success(clusters, skyctl):
    skyctl("create", "link", "valid-link", "-s", "cluster1", "-t", "cluster2")
    result = skyctl("delete", "link", "valid-link")
    assert result.exit_code == 0
    assert "Deleted link valid-link." in result.output


def test_delete_nonexistent_link(clusters, skyctl):
    result = skyctl("delete", "link", "nonexistent-link")
    assert result.exit_code != 0
    assert "not exist" in result.output
    assert "Link 'nonexistent-link' does not exist." in result.output


# -- The seed page, word for word --------------------------------------------------------------


def test_seed_example_in_an_empty_directory(workspace, skyctl):
    skyctl("create", "cluster", "sourceCluster", "--endpoint", "192.0.2.1:51820")
    skyctl("create", "cluster", "targetCluster", "--endpoint", "192.0.2.2:51820")
    created = skyctl("create", "link", "myLink", "-s", "sourceCluster", "-t", "targetCluster")
    assert created.output == "+ link.myLink\nCreated link myLink.\n"
    got = skyctl("get", "link", "myLink")
    lines = got.output.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "TARGET", "STATUS", "AGE"]
    assert lines[1].split()[:4] == ["myLink", "sourceCluster", "targetCluster", "INIT"]
    assert "PublicKey" in (workspace / "wireguard/sourceCluster/wgsky0.conf").read_text()
    deleted = skyctl("delete", "link", "myLink")
    assert deleted.output == "- link.myLink\nDeleted link myLink.\n"
    assert "[Peer]" not in (workspace / "wireguard/sourceCluster/wgsky0.conf").read_text()
    assert skyctl("get", "link").output == "No links found.\n"


# -- skyplan's additions -------------------------------------------------------------------------


def test_aliases(clusters, skyctl):
    assert skyctl("create", "links", "l1", "-s", "cluster1", "-t", "cluster2").exit_code == 0
    assert "l1" in skyctl("get", "links").output
    assert "cluster1" in skyctl("get", "clusters").output
    assert skyctl("delete", "links", "l1").exit_code == 0


def test_a_second_link_between_a_linked_pair_shares_the_peering(clusters, skyctl):
    skyctl("create", "link", "first", "-s", "cluster1", "-t", "cluster2")
    second = skyctl("create", "link", "second", "-s", "cluster2", "-t", "cluster1")
    assert second.exit_code == 0
    assert "already linked by 'first'; link 'second' shares that peering" in second.output
    config = (clusters / "wireguard/cluster1/wgsky0.conf").read_text()
    assert config.count("[Peer]") == 1 and "links: first, second" in config
    skyctl("delete", "link", "first")
    assert "[Peer]" in (clusters / "wireguard/cluster1/wgsky0.conf").read_text(), "the peering lasts while either exists"
    skyctl("delete", "link", "second")
    assert "[Peer]" not in (clusters / "wireguard/cluster1/wgsky0.conf").read_text()


def test_get_unknown_link_is_not_found(clusters, skyctl):
    result = skyctl("get", "link", "nope")
    assert result.exit_code == 1
    assert "Link 'nope' not found." in result.output


def test_get_output_json_and_yaml(clusters, skyctl):
    skyctl("create", "link", "l1", "-s", "cluster1", "-t", "cluster2")
    one = json.loads(skyctl("get", "link", "l1", "-o", "json").output)
    assert one["kind"] == "Link"
    assert one["metadata"]["name"] == "l1"
    assert one["spec"] == {"source_cluster": "cluster1", "target_cluster": "cluster2"}
    assert one["status"]["phase"] == "INIT"
    conditions = {c["type"]: c for c in one["status"]["conditions"]}
    assert conditions["ConfigWritten"]["status"] == "True"
    assert conditions["HandshakeObserved"]["status"] == "Unknown"
    assert "handshake not observed" in conditions["HandshakeObserved"]["message"]
    listing = json.loads(skyctl("get", "link", "-o", "json").output)
    assert listing["kind"] == "LinkList" and [i["metadata"]["name"] for i in listing["items"]] == ["l1"]
    documents = list(YAML(typ="safe").load_all(skyctl("get", "link", "-o", "yaml").output))
    assert documents[0]["spec"]["source_cluster"] == "cluster1"


def test_get_yaml_reads_back_as_manifests(clusters, skyctl, skyplan):
    """`skyctl get -o yaml` output is a file skyplan plans: the file adopts what it declares."""
    skyctl("create", "link", "l1", "-s", "cluster1", "-t", "cluster2")
    manifests = skyctl("get", "clusters", "-o", "yaml").output + "---\n" + skyctl("get", "links", "-o", "yaml").output
    (clusters / "links.yaml").write_text(manifests)
    plan = skyplan("plan")
    assert plan.exit_code == 0, plan.output
    assert "Plan: 0 to add, 3 to change, 0 to destroy." in plan.output
    assert '~ managed_by = "skyctl" -> "file"' in plan.output


def test_create_cluster_errors(workspace, skyctl):
    skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820", "--subnet", "10.1.0.0/16")
    cases = {
        ("a", "192.0.2.9:1"): "Cluster 'a' already exists.",
        ("b c", "192.0.2.9:1"): "Cluster name 'b c' is invalid",
        ("b", "192.0.2.9"): "'192.0.2.9' is not host:port",
    }
    for (name, endpoint), message in cases.items():
        result = skyctl("create", "cluster", name, "--endpoint", endpoint)
        assert result.exit_code == 1 and message in result.output
    overlap = skyctl("create", "cluster", "b", "--endpoint", "192.0.2.2:1", "--subnet", "100.96.1.0/24")
    assert "overlaps the address pool 100.96.0.0/16" in overlap.output
    assert "Traceback" not in overlap.output
    assert [r["name"] for r in json.loads((workspace / ".skyplan/state.json").read_text())["resources"]] == ["a"]


def test_a_link_that_would_overlap_routes_is_refused(workspace, skyctl):
    for name, subnet in (("hub", "10.0.0.0/16"), ("x", "10.1.0.0/16"), ("y", "10.1.0.0/24")):
        skyctl("create", "cluster", name, "--endpoint", "192.0.2.1:51820", "--subnet", subnet)
    assert skyctl("create", "link", "hub-x", "-s", "hub", "-t", "x").exit_code == 0
    result = skyctl("create", "link", "hub-y", "-s", "hub", "-t", "y")
    assert result.exit_code == 1
    assert "cluster 'hub' would reach 10.1.0.0/16 of cluster 'x' and 10.1.0.0/24 of cluster 'y', which overlap" in result.output


def test_delete_cluster_needs_its_links_gone(clusters, skyctl):
    skyctl("create", "link", "l1", "-s", "cluster1", "-t", "cluster2")
    refused = skyctl("delete", "cluster", "cluster1")
    assert refused.exit_code == 1 and "Cluster 'cluster1' is still linked by l1; delete those links first." in refused.output
    skyctl("delete", "link", "l1")
    assert skyctl("delete", "cluster", "cluster1").output == "- cluster.cluster1\nDeleted cluster cluster1.\n"
    assert not (clusters / ".skyplan/keys/cluster1.key").exists()
    assert skyctl("delete", "cluster", "cluster1").exit_code == 1


# -- Ownership: skyctl and skyplan apply mixed ----------------------------------------------------

FILE = links_yaml(
    [("a", "192.0.2.1:51820", ["10.1.0.0/16"]), ("b", "192.0.2.2:51820", ["10.2.0.0/16"]), ("c", "192.0.2.3:51820", ["10.3.0.0/16"])],
    [("a-b", "a", "b")],
)


def test_skyplan_never_destroys_skyctl_links(workspace, skyplan, skyctl):
    (workspace / "links.yaml").write_text(FILE)
    skyplan("apply", "--auto-approve")
    assert skyctl("create", "link", "adhoc", "-s", "b", "-t", "c").exit_code == 0
    plan = skyplan("plan")
    assert "No changes. Links match the configuration." in plan.output
    assert "Note: 1 resource managed by skyctl left alone: link.adhoc." in plan.output
    skyplan("apply", "--auto-approve")
    assert "link.adhoc" in {f"{r['type']}.{r['name']}" for r in state(workspace)["resources"]}
    destroy = skyplan("destroy", "--auto-approve")
    assert destroy.exit_code == 0, destroy.output
    assert "Note: cluster.b is kept: link.adhoc (not managed by this file) still joins it." in destroy.output
    assert "Destroy complete! Resources: 2 destroyed." in destroy.output  # link.a-b and cluster.a
    left = {f"{r['type']}.{r['name']}" for r in state(workspace)["resources"]}
    assert left == {"cluster.b", "cluster.c", "link.adhoc"}
    # Removing a cluster from the file while a skyctl link joins it is refused, with the way out.
    (workspace / "links.yaml").write_text(FILE.replace('  - name: c\n    endpoint: "192.0.2.3:51820"\n    subnets: [10.3.0.0/16]\n', ""))
    refused = skyplan("plan")
    assert refused.exit_code == 1
    assert "cluster.c cannot be destroyed while link.adhoc (managed by skyctl) joins it; delete it first with: skyctl delete link adhoc" in refused.output


def test_file_adopts_a_same_named_skyctl_link(workspace, skyplan, skyctl):
    (workspace / "links.yaml").write_text(FILE)
    skyplan("apply", "--auto-approve")
    skyctl("create", "link", "b-c", "-s", "b", "-t", "c")
    (workspace / "links.yaml").write_text(FILE + "  - name: b-c\n    source: b\n    target: c\n")
    plan = skyplan("plan")
    assert "# link.b-c will be updated in-place" in plan.output
    assert '~ managed_by = "skyctl" -> "file"' in plan.output
    skyplan("apply", "--auto-approve")
    owners = {r["name"]: r["managed_by"] for r in state(workspace)["resources"]}
    assert owners["b-c"] == "file"
    refused = skyctl("delete", "link", "b-c")
    assert refused.exit_code == 1
    assert "Link 'b-c' is managed by links.yaml; remove it from that file and run skyplan apply." in refused.output


def test_skyctl_uses_the_workspace_of_links_yaml_and_its_settings(workspace, skyplan, skyctl, tmp_path_factory):
    (workspace / "links.yaml").write_text(FILE.replace("name: wireguard", "name: wireguard\n  interface: wgteam"))
    skyplan("apply", "--auto-approve")
    assert skyctl("create", "link", "adhoc", "-s", "a", "-t", "c").exit_code == 0
    assert "# Peer c, link: adhoc" in (workspace / "wireguard/a/wgteam.conf").read_text()
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    result = skyctl("get", "link", "--config", str(workspace / "links.yaml"))
    assert "adhoc" in result.output and "a-b" in result.output
    env = {"SKYPLAN_CONFIG": str(workspace / "links.yaml")}
    import os

    os.chdir(elsewhere)
    assert "adhoc" in skyctl("get", "link", env=env).output


def test_failed_hook_marks_the_link_failed_and_keeps_the_reason(workspace, skyctl):
    (workspace / "links.yaml").write_text(
        "version: 1\nprovider:\n  name: wireguard\n  on_change: [sh, -c, 'echo reload of {{ cluster }} refused >&2; exit 3']\n"
    )
    skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820")
    skyctl("create", "cluster", "b", "--endpoint", "192.0.2.2:51820")
    result = skyctl("create", "link", "l", "-s", "a", "-t", "b")
    assert result.exit_code == 1
    assert "reload of a refused" in result.output
    got = skyctl("get", "link", "l")
    assert got.output.splitlines()[1].split()[3] == "FAILED"
    reason = json.loads(skyctl("get", "link", "l", "-o", "json").output)["status"]["reason"]
    assert "on_change for cluster 'a' failed" in reason and "exited with 3" in reason


def test_hook_gets_its_variables_and_runs_once_per_changed_cluster(workspace, skyctl):
    log = workspace / "hook.log"
    (workspace / "links.yaml").write_text(
        "version: 1\nprovider:\n  name: wireguard\n  on_change: [sh, -c, 'echo \"$0 $1 $2 $3\" >> "
        + str(log)
        + "', '{{ cluster }}', '{{ interface }}', '{{ config_path | quote }}', '{{ address }}']\n"
    )
    skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820")
    skyctl("create", "cluster", "b", "--endpoint", "192.0.2.2:51820")
    log.write_text("")
    skyctl("create", "link", "l", "-s", "a", "-t", "b")
    lines = sorted(log.read_text().splitlines())  # hooks run at the same time: in any order
    assert [line.split()[0] for line in lines] == ["a", "b"]
    name, interface, path, address = lines[0].split()
    assert interface == "wgsky0" and path == str(workspace / "wireguard/a/wgsky0.conf") and address == "100.96.0.1"


def test_watch_redraws_on_change_and_ctrl_c_exits_cleanly(clusters, skyctl, monkeypatch):
    import skyplan.cli.skyctl_cmd as cmd

    calls = {"n": 0}

    def fake_sleep(seconds):
        calls["n"] += 1
        if calls["n"] == 1:
            from click.testing import CliRunner

            CliRunner().invoke(cmd.main, ["create", "link", "late", "-s", "cluster1", "-t", "cluster2"])
        elif calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cmd.time, "sleep", fake_sleep)
    result = skyctl("get", "link", "-w")
    assert result.exit_code == 0
    assert "Traceback" not in result.output
    assert result.output.startswith("No links found.\n\nNAME")
    assert result.output.count("late") == 1, "no redraw while nothing changed"


@pytest.mark.parametrize("command", [[], ["get"], ["get", "link"], ["create", "link"], ["delete", "cluster"]])
def test_skyctl_version_everywhere(skyctl, command):
    result = skyctl(*command, "--version")
    assert result.exit_code == 0 and result.output == f"skyctl {__version__}\n"


def test_skyctl_reads_a_templated_workspace_with_its_variables(workspace, skyctl):
    (workspace / "links.yaml.j2").write_text("version: 1\nprovider:\n  name: wireguard\n  interface: wg{{ env }}\n")
    refused = skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820")
    assert refused.exit_code == 1 and "links.yaml.j2, a template: pass --config links.yaml.j2" in refused.output
    assert not (workspace / ".skyplan").exists()
    created = skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820", "--config", "links.yaml.j2", "--var", "env=prod")
    assert created.exit_code == 0, created.output
    assert (workspace / "wireguard/a/wgprod.conf").exists()


@pytest.mark.parametrize(
    "command, message",
    [
        (("create", "link", "l", "-s", "a", "-t", "b"), "Source cluster 'a' not found."),
        (("delete", "link", "l"), "Link 'l' does not exist."),
        (("delete", "cluster", "a"), "Cluster 'a' does not exist."),
    ],
)
def test_refusals_in_an_empty_folder_leave_nothing_behind(workspace, skyctl, command, message):
    result = skyctl(*command)
    assert result.exit_code == 1 and message in result.output
    assert list(workspace.iterdir()) == []


@pytest.mark.parametrize("gateway", ["-oProxyCommand=touch x", "host -p 22", "%h", "ftp://host"])
def test_create_cluster_refuses_a_gateway_ssh_could_misread(workspace, skyctl, gateway):
    result = skyctl("create", "cluster", "g", "--endpoint", "192.0.2.7:51820", "--gateway", gateway)
    assert result.exit_code == 1
    assert "the gateway" in result.output and "ssh://[user@]host[:port]" in result.output
    assert "Traceback" not in result.output
    assert not (workspace / ".skyplan/state.json").exists()
    assert not (workspace / "x").exists()


# -- Clusters behind NAT and external peers (CONTRACT 6) -------------------------------------------

PARTNER_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="


def test_create_cluster_without_endpoint_is_behind_nat(workspace, skyctl):
    assert skyctl("create", "cluster", "hub", "--endpoint", "192.0.2.1:51820").exit_code == 0
    created = skyctl("create", "cluster", "home", "--subnet", "10.1.0.0/16")
    assert created.exit_code == 0, created.output
    assert created.output.endswith("Created cluster home.\n")
    home = next(r for r in state(workspace)["resources"] if r["name"] == "home")
    assert "endpoint" not in home["attributes"] and home["attributes"]["subnets"] == ["10.1.0.0/16"]
    row = next(line for line in skyctl("get", "cluster").output.splitlines() if line.startswith("home "))
    assert row.split()[:3] == ["home", "<none>", "10.1.0.0/16"]
    manifest = YAML(typ="safe").load(skyctl("get", "cluster", "home", "-o", "yaml").output)
    assert "endpoint" not in manifest["spec"]


def test_a_link_that_neither_end_can_dial_is_refused(workspace, skyctl):
    for name in ("home", "office"):
        assert skyctl("create", "cluster", name).exit_code == 0
    before = state(workspace)
    result = skyctl("create", "link", "home-office", "-s", "home", "-t", "office")
    assert result.exit_code == 1
    assert "neither cluster 'home' nor cluster 'office' has an endpoint, so neither can dial the other" in result.output
    assert "Traceback" not in result.output
    assert state(workspace) == before


def test_create_cluster_with_public_key_records_an_external_peer(workspace, skyctl):
    result = skyctl("create", "cluster", "partner", "--endpoint", "198.51.100.7:51820", "--public-key", PARTNER_KEY)
    assert result.exit_code == 0, result.output
    partner = state(workspace)["resources"][0]
    assert partner["attributes"]["public_key"] == PARTNER_KEY
    manifest = YAML(typ="safe").load(skyctl("get", "cluster", "partner", "-o", "yaml").output)
    assert manifest["spec"]["public_key"] == PARTNER_KEY


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--public-key", "not-a-key"), "not a WireGuard public key (44 characters of canonical base64"),
        (("--public-key", PARTNER_KEY[:-2] + "h="), "not a WireGuard public key"),  # wg refuses non-canonical base64
        (("--public-key", PARTNER_KEY, "--gateway", "ssh://root@192.0.2.7"), "an external peer (public_key) is managed elsewhere and cannot have a gateway"),
        (("--public-key", PARTNER_KEY, "--listen-port", "51821"), "so its listen_port would have no effect"),
    ],
)
def test_create_cluster_refuses_an_external_peer_it_could_not_describe(workspace, skyctl, extra, message):
    assert skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820").exit_code == 0
    before = state(workspace)
    result = skyctl("create", "cluster", "partner", "--endpoint", "198.51.100.7:51820", *extra)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert state(workspace) == before
    assert not (workspace / ".skyplan/keys/partner.key").exists()


def test_create_cluster_help_names_the_optional_endpoint_and_public_key(skyctl):
    shown = skyctl("create", "cluster", "--help").output
    assert "--public-key KEY" in shown and "--endpoint HOST:PORT" in shown
    assert "behind NAT" in shown


TRANSIT = links_yaml(
    [("hub", "192.0.2.1:51820", ["10.0.0.0/16"]), ("s1", "192.0.2.2:51820", ["10.1.0.0/16"]), ("s2", "192.0.2.3:51820", ["10.2.0.0/16"])],
    [],
) + "meshes:\n  - {name: m, clusters: [hub, s1, s2], topology: hub, hub: hub, transit: true}\n"


def test_a_skyctl_link_is_judged_with_what_a_spoke_reaches_through_its_transit_hub(workspace, skyplan, skyctl):
    (workspace / "links.yaml").write_text(TRANSIT)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    links = {r["name"]: r["attributes"] for r in state(workspace)["resources"] if r["type"] == "link"}
    assert links == {
        "m.hub.s1": {"source": "hub", "target": "s1", "transit_hub": "hub"},
        "m.hub.s2": {"source": "hub", "target": "s2", "transit_hub": "hub"},
    }
    assert skyctl("create", "cluster", "x", "--endpoint", "192.0.2.9:51820", "--subnet", "10.2.3.0/24").exit_code == 0
    before = state(workspace)
    # s1 reaches s2's 10.2.0.0/16 through the hub: x's 10.2.3.0/24 next to it would be a second route.
    result = skyctl("create", "link", "s1-x", "-s", "s1", "-t", "x")
    assert result.exit_code == 1
    assert "cluster 's1' would reach 10.2.0.0/16 of cluster 's2' and 10.2.3.0/24 of cluster 'x', which overlap" in result.output
    assert state(workspace) == before
    # The hub itself does not route for x: a link from the hub is judged as before (x overlaps s2 there too).
    assert skyctl("create", "link", "hub-x", "-s", "hub", "-t", "x").exit_code == 1
