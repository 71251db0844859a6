"""skyctl on real tunnels: an on_change hook reloads live interfaces, status_command shows ACTIVE.

Follows the SkyShift page word for word after registering the clusters:
`skyctl create link myLink -s sourceCluster -t targetCluster`, `get link`, `delete link`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from .netns import Lab, read_wg_quick

pytestmark = pytest.mark.e2e

SOURCE, TARGET = "sourceCluster", "targetCluster"

# Reloads a live interface as an operator would: peers through `wg syncconf` (sessions survive),
# then a route for every AllowedIPs entry, which `wg syncconf` does not add.
RELOAD = (
    "wg syncconf {{ interface }} <(wg-quick strip {{ config_path | quote }}) && "
    "for net in $(wg show {{ interface }} allowed-ips | cut -f2); do "
    "ip route replace $net dev {{ interface }}; done"
)


def skyctl(*args: str):
    from skyplan.cli.skyctl_cmd import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def provider_settings(lab: Lab, hooks: bool) -> str:
    prefix = json.dumps(lab.command_prefix_template())[1:-1]
    text = "version: 1\nprovider:\n  name: wireguard\n  address_pool: 100.96.0.0/24\n"
    if hooks:
        text += f"  on_change: [{prefix}, bash, -c, {json.dumps(RELOAD)}]\n"
        text += f"  status_command: [{prefix}, wg, show, '{{{{ interface }}}}', dump]\n"
    return text


def status_of(name: str) -> str:
    result = skyctl("get", "link", name)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[1].split()[3]


def wait_for(condition, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def test_skyctl_link_with_reload_hook_and_status(make_lab, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    lab = make_lab(SOURCE, TARGET)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    links_file = workspace / "links.yaml"

    # Register the clusters and bring their interfaces up once, as an operator would.
    links_file.write_text(provider_settings(lab, hooks=False))
    for index, name in enumerate((SOURCE, TARGET)):
        created = skyctl("create", "cluster", name, "--endpoint", lab.endpoint(name), "--subnet", f"10.{index + 1}.0.0/16")
        assert created.exit_code == 0, created.output
    configs = {name: workspace / "wireguard" / name / "wgsky0.conf" for name in (SOURCE, TARGET)}
    for name, path in configs.items():
        lab.up(name, path)
    overlay = {name: read_wg_quick(path).addresses[0].split("/")[0] for name, path in configs.items()}
    assert not lab.ping(SOURCE, overlay[TARGET], attempts=1), "reachable before any link exists"

    # From here on every change reloads the live interfaces through the hook.
    links_file.write_text(provider_settings(lab, hooks=True))
    created = skyctl("create", "link", "myLink", "-s", SOURCE, "-t", TARGET)
    assert created.exit_code == 0, created.output
    assert created.output == "+ link.myLink\nCreated link myLink.\n"
    # Both ends reload at once: a handshake that reaches an end a moment before its reload is
    # dropped, and WireGuard tries again only after REKEY_TIMEOUT (5 s), as the gateway tests allow.
    up = wait_for(lambda: lab.ping(SOURCE, overlay[TARGET], attempts=1) and lab.ping(TARGET, overlay[SOURCE], attempts=1), seconds=12)
    assert up, "the hook did not bring the link up"
    assert wait_for(lambda: status_of("myLink") == "ACTIVE"), skyctl("get", "link", "myLink", "-o", "json").output
    listing = skyctl("get", "link").output.splitlines()
    assert listing[0].split() == ["NAME", "SOURCE", "TARGET", "STATUS", "AGE"]
    assert listing[1].split()[:4] == ["myLink", SOURCE, TARGET, "ACTIVE"]
    detail = json.loads(skyctl("get", "link", "myLink", "-o", "json").output)
    handshake = next(c for c in detail["status"]["conditions"] if c["type"] == "HandshakeObserved")
    assert handshake["status"] == "True" and "shook hands" in handshake["message"]

    deleted = skyctl("delete", "link", "myLink")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.output == "- link.myLink\nDeleted link myLink.\n"
    assert lab.wg_dump(SOURCE).peers == {} and lab.wg_dump(TARGET).peers == {}
    assert not lab.ping(SOURCE, overlay[TARGET], attempts=1), "still reachable after the link was deleted"
    assert skyctl("get", "link").output == "No links found.\n"

    # A hook that fails (the interface is gone) marks the link FAILED, with the reason kept.
    lab.run(SOURCE, ["ip", "link", "del", "wgsky0"])
    failed = skyctl("create", "link", "again", "-s", SOURCE, "-t", TARGET)
    assert failed.exit_code == 1
    assert status_of("again") == "FAILED"
    reason = json.loads(skyctl("get", "link", "again", "-o", "json").output)["status"]["reason"]
    assert f"on_change for cluster '{SOURCE}' failed" in reason
