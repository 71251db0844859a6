"""Issue 13's layouts through the commands users run: preshared keys that never leave their files,
rotated by --replace, following a `moved` rename; an external peer whose key change is an update."""

from __future__ import annotations

import json
import re

PARTNER_KEY = "zB5JQz6sh4drgW28eA6b17tyU7Fue9sXv+57ZcBWgAU="
NEW_PARTNER_KEY = "uBUMPXoOM7aziks+Vh2gX37m349A228D7ZEc49DkGUU="

LAYOUT = """\
version: 1
provider:
  name: wireguard
  preshared_keys: true
  on_change: [sh, -c, 'env > {log}/{{{{ cluster }}}}.env']
clusters:
  - name: hub
    endpoint: 192.0.2.1:51820
    subnets: [10.0.0.0/16]
  - name: a
    endpoint: 192.0.2.2:51820
    subnets: [10.1.0.0/16]
  - name: {nat}
    subnets: [10.2.0.0/16]
  - name: partner
    endpoint: 198.51.100.7:51820
    public_key: "{partner}"
    address: 100.96.0.50
meshes:
  - {{name: stores, clusters: [hub, a, {nat}], topology: hub, hub: hub, transit: true}}
links:
  - {{name: hub-partner, source: hub, target: partner}}
{moved}"""


def write(workspace, nat: str = "b", partner: str = PARTNER_KEY, moved: str = "") -> None:
    (workspace / "hooks").mkdir(exist_ok=True)
    (workspace / "links.yaml").write_text(LAYOUT.format(log=workspace / "hooks", nat=nat, partner=partner, moved=moved))


def secrets(workspace) -> dict[str, str]:
    return {p.name: p.read_text().strip() for p in (workspace / ".skyplan/keys").iterdir()}


def everything_shown(workspace, outputs) -> str:
    """Every text a user, a log or a hook could see."""
    texts = [*outputs, (workspace / ".skyplan/state.json").read_text()]
    texts += [p.read_text() for p in (workspace / "hooks").iterdir()]
    texts += [p.read_text(errors="replace") for p in workspace.glob("*.plan")]
    return "\n".join(texts)


def test_preshared_keys_live_only_in_their_files_and_rotate_with_replace(workspace, skyplan) -> None:
    write(workspace)
    outputs = [skyplan("apply", "--auto-approve").output]
    assert "Apply complete! Resources: 7 added" in outputs[0]
    keys = secrets(workspace)
    assert sorted(k for k in keys if k.endswith(".psk")) == ["a+hub.psk", "b+hub.psk", "hub+partner.psk"]
    hub = (workspace / "wireguard/hub/wgsky0.conf").read_text()
    assert all(f"PresharedKey = {keys[k]}" in hub for k in keys if k.endswith(".psk"))
    assert not (workspace / "wireguard/partner").exists() and "partner.key" not in keys
    assert not (workspace / "hooks/partner.env").exists()  # an external peer has no hook either
    outputs.append(skyplan("plan").output)
    assert "No changes." in outputs[-1]

    outputs.append(skyplan("plan", "--replace", "link.stores.hub.b", "--out", "r.plan").output)
    outputs.append(skyplan("show", "--json", "r.plan").output)
    applied = skyplan("apply", "--replace", "link.stores.hub.b", "r.plan")
    assert applied.exit_code == 0, applied.output
    outputs.append(applied.output)
    rotated = secrets(workspace)
    assert rotated["b+hub.psk"] != keys["b+hub.psk"] and rotated["a+hub.psk"] == keys["a+hub.psk"]
    assert f"PresharedKey = {rotated['b+hub.psk']}" in (workspace / "wireguard/b/wgsky0.conf").read_text()
    shown = everything_shown(workspace, outputs)
    for value in {**keys, **rotated}.values():
        assert value not in shown


def test_a_preshared_key_removed_by_hand_is_drift_that_apply_puts_back(workspace, skyplan) -> None:
    write(workspace)
    skyplan("apply", "--auto-approve")
    config = workspace / "wireguard/a/wgsky0.conf"
    key = secrets(workspace)["a+hub.psk"]
    config.write_text(config.read_text().replace(f"PresharedKey = {key}\n", ""))
    plan = skyplan("plan")
    assert "Changed outside skyplan" in plan.output and "preshared_key" in plan.output
    assert key not in plan.output
    skyplan("apply", "--auto-approve")
    assert f"PresharedKey = {key}" in config.read_text()
    assert "No changes." in skyplan("plan").output


def test_a_moved_cluster_keeps_its_preshared_key(workspace, skyplan) -> None:
    write(workspace)
    skyplan("apply", "--auto-approve")
    key = secrets(workspace)["b+hub.psk"]
    write(workspace, nat="c", moved="moved:\n  - {from: cluster.b, to: cluster.c}\n")
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    after = secrets(workspace)
    assert after.get("c+hub.psk") == key and "b+hub.psk" not in after
    assert f"PresharedKey = {key}" in (workspace / "wireguard/c/wgsky0.conf").read_text()


def test_an_external_peer_s_new_key_is_an_update_of_its_peers(workspace, skyplan) -> None:
    write(workspace)
    skyplan("apply", "--auto-approve")
    write(workspace, partner=NEW_PARTNER_KEY)
    plan = skyplan("plan", "--compact")
    assert re.search(r"~ cluster\.partner", plan.output), plan.output
    assert "-/+" not in plan.output
    skyplan("apply", "--auto-approve")
    assert f"PublicKey = {NEW_PARTNER_KEY}" in (workspace / "wireguard/hub/wgsky0.conf").read_text()
    state = json.loads((workspace / ".skyplan/state.json").read_text())
    (partner,) = [r for r in state["resources"] if r["name"] == "partner"]
    assert partner["computed"]["public_key"] == NEW_PARTNER_KEY


def test_a_planted_preshared_key_file_is_never_followed_or_taken(workspace, skyplan) -> None:
    write(workspace)
    folder = workspace / ".skyplan/keys"
    folder.mkdir(parents=True, mode=0o700)
    outside = workspace.parent / f"{workspace.name}-outside"
    outside.write_text("precious\n")
    (folder / "a+hub.psk").symlink_to(outside)
    # A key the attacker knows, checked out from a repository (0644): no secret.
    known = "dGhpcyBpcyBub3QgYSByZWFsIGtleSBidXQgbG9va3M="
    (folder / "b+hub.psk").write_text(known + "\n")
    (folder / "b+hub.psk").chmod(0o644)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "a+hub.psk" in result.output and "b+hub.psk is readable by others (mode 0644)" in result.output
    assert outside.read_text() == "precious\n" and (folder / "a+hub.psk").is_symlink()
    for config in (workspace / "wireguard").rglob("*.conf"):
        assert known not in config.read_text() and "precious" not in config.read_text()
    assert known not in result.output
    # The clusters whose files would hold those keys got none; removed, the files are made anew.
    assert not [c for c in ("hub", "a", "b") if (workspace / f"wireguard/{c}/wgsky0.conf").exists()]
    (folder / "a+hub.psk").unlink()
    (folder / "b+hub.psk").unlink()
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert known not in (workspace / "wireguard/hub/wgsky0.conf").read_text()
    assert secrets(workspace)["b+hub.psk"] != known
