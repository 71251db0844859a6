"""Issue 13's new inputs as an attacker would use them: planted preshared key files, outputs that
must never carry a piece of a preshared key, configs whose forwarding line was edited."""

from __future__ import annotations

import base64
import json
import os

import pytest

from skyplan_wireguard import conf, keys, psk
from tests.providers.wireguard.test_topology_cli import secrets, write

PIECE = 10


def pieces(value: str) -> set[str]:
    return {value[i : i + PIECE] for i in range(len(value) - PIECE + 1)}


def assert_no_piece_of(values, text: str) -> None:
    for value in values:
        leaked = [piece for piece in pieces(value) if piece in text]
        assert not leaked, f"a piece of a preshared key was shown: {leaked[:3]}"


def psk_values(workspace) -> list[str]:
    return [value for name, value in secrets(workspace).items() if name.endswith(".psk")]


def test_no_ten_characters_of_a_preshared_key_reach_any_output(workspace, skyplan, skyctl, monkeypatch, tmp_path_factory) -> None:
    write(workspace)
    outputs = [skyplan("apply", "--auto-approve").output]
    values = psk_values(workspace)
    assert len(values) == 3
    outputs.append(skyplan("plan", "--out", "p.plan").output)
    outputs.append(skyplan("show", "--json", "p.plan").output)
    outputs.append(skyplan("show", "p.plan").output)
    for kind in ("link", "cluster"):
        for form in ("json", "yaml"):
            outputs.append(skyctl("get", kind, "-o", form).output)
        outputs.append(skyctl("get", kind).output)
    outputs.append(skyplan("validate").output)
    # Drift of every kind a preshared key can show: changed, removed, added where none is wanted.
    hub = workspace / "wireguard/hub/wgsky0.conf"
    other = psk.generate()
    text = hub.read_text()
    first, second = sorted(value for value in values if f"PresharedKey = {value}" in text)[:2]
    hub.write_text(text.replace(first, other).replace(f"PresharedKey = {second}\n", ""))
    drift = skyplan("plan")
    assert "preshared_key" in drift.output and drift.exit_code == 0
    outputs.append(drift.output)
    outputs.append(skyplan("plan", "--refresh-only").output)
    outputs.append(skyplan("apply", "--auto-approve").output)
    # A crash in the middle of an apply that holds the keys in memory: the report carries none.
    reports = tmp_path_factory.mktemp("reports")
    monkeypatch.setenv("TMPDIR", str(reports))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(reports))
    hub.write_text(hub.read_text().replace(first, other))

    def boom(*args, **kwargs):
        raise RuntimeError(f"boom {args!r} {kwargs!r}")

    monkeypatch.setattr(conf, "render", boom)
    crashed = skyplan("apply", "--auto-approve")
    assert crashed.exit_code == 1 and "unexpected internal error" in crashed.output, crashed.output
    monkeypatch.undo()
    outputs.append(crashed.output)
    outputs += [p.read_text() for p in reports.iterdir()]
    assert list(reports.iterdir()), "no crash report was saved"
    shown = "\n".join(outputs)
    shown += "\n" + (workspace / ".skyplan/state.json").read_text()
    shown += "\n" + (workspace / ".skyplan/state.json.backup").read_text()
    shown += "\n".join(p.read_text() for p in (workspace / "hooks").iterdir())
    shown += "\n".join(p.read_bytes().decode("latin-1") for p in workspace.glob("*.plan"))
    assert_no_piece_of(values + [other], shown)
    # Nor any of a private key.
    assert_no_piece_of([v for n, v in secrets(workspace).items() if n.endswith(".key")], shown)


def test_hook_environments_hold_no_piece_of_a_key(workspace, skyplan) -> None:
    write(workspace)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    environments = "\n".join(p.read_text() for p in (workspace / "hooks").iterdir())
    assert "SKYPLAN" in environments or "PATH" in environments  # the hooks did run
    assert_no_piece_of(secrets(workspace).values(), environments)


def _planted(workspace, name: str, content: bytes, mode: int = 0o600):
    folder = workspace / ".skyplan/keys"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    file = folder / name
    file.write_bytes(content)
    file.chmod(mode)
    return file


SHORT_KEY = base64.b64encode(b"k" * 16).decode()  # base64, but 16 bytes: no WireGuard key
LONG_KEY = base64.b64encode(b"k" * 48).decode()


@pytest.mark.parametrize(
    "content",
    [SHORT_KEY.encode(), LONG_KEY.encode(), b"\x00" * 44, b"x" * 100_000, ("A" * 42 + "B=").encode(), b""],
    ids=["16 bytes", "48 bytes", "NULs", "huge", "not canonical", "empty"],
)
def test_a_planted_file_that_holds_no_key_stops_the_apply_and_is_never_quoted(workspace, skyplan, content) -> None:
    write(workspace)
    planted = _planted(workspace, "a+hub.psk", content)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "a+hub.psk" in result.output, result.output
    assert "Traceback" not in result.output
    text = content.decode("latin-1")
    assert not (len(text) >= PIECE and any(piece in result.output for piece in pieces(text[:60]) if piece.strip("\x00")))
    assert planted.read_bytes() == content  # neither taken nor replaced behind the user's back
    for config in (workspace / "wireguard").rglob("*.conf"):
        assert content.decode("latin-1") not in config.read_text() or not content
    # plan stops on it as well, located, and writes nothing
    before = sorted(p.relative_to(workspace) for p in workspace.rglob("*"))
    plan = skyplan("plan")
    assert plan.exit_code == 1 and "a+hub.psk" in plan.output
    assert sorted(p.relative_to(workspace) for p in workspace.rglob("*")) == before


def test_a_folder_in_place_of_a_key_file_stops_the_apply_and_is_left_alone(workspace, skyplan) -> None:
    write(workspace)
    folder = workspace / ".skyplan/keys/a+hub.psk"
    folder.mkdir(parents=True)
    (folder / "inside").write_text("precious\n")
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1 and "a+hub.psk" in result.output and "Traceback" not in result.output
    assert (folder / "inside").read_text() == "precious\n"
    assert not (workspace / "wireguard/a/wgsky0.conf").exists() and not (workspace / "wireguard/hub/wgsky0.conf").exists()


def test_a_key_file_hard_linked_to_a_private_key_is_not_taken(workspace, skyplan) -> None:
    """A second name for another secret file (here cluster a's private key, which has a key's
    shape) would put that secret into both ends' configs as their preshared key."""
    write(workspace)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    folder = workspace / ".skyplan/keys"
    private = (folder / "a.key").read_text().strip()
    (folder / "a+hub.psk").unlink()
    os.link(folder / "a.key", folder / "a+hub.psk")
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "a+hub.psk" in result.output and "link" in result.output
    for config in (workspace / "wireguard").rglob("*.conf"):
        assert f"PresharedKey = {private}" not in config.read_text()
    assert (folder / "a.key").read_text().strip() == private  # the private key is untouched
    assert_no_piece_of([private], result.output)


@pytest.mark.parametrize("name", ["hub+a.psk", "a+hub+b.psk", "a.psk", "a+hub.psk.tmp", "A+HUB.psk"])
def test_a_planted_file_under_another_name_is_neither_taken_nor_deleted(workspace, skyplan, name) -> None:
    write(workspace)
    known = psk.generate()
    planted = _planted(workspace, name, (known + "\n").encode())
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    for config in (workspace / "wireguard").rglob("*.conf"):
        assert known not in config.read_text()
    assert planted.read_text() == known + "\n"
    assert "No changes." in skyplan("plan").output
    assert skyplan("destroy", "--auto-approve").exit_code == 0
    assert planted.read_text() == known + "\n"  # not skyplan's file: not deleted either
    assert sorted(p.name for p in planted.parent.iterdir()) == [name], "a key of skyplan's outlived destroy"


def test_a_stored_key_made_readable_by_others_stops_plan_and_apply(workspace, skyplan) -> None:
    write(workspace)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    stored = workspace / ".skyplan/keys/a+hub.psk"
    value = stored.read_text().strip()
    stored.chmod(0o604)
    configs = {p: p.read_bytes() for p in (workspace / "wireguard").rglob("*.conf")}
    state = (workspace / ".skyplan/state.json").read_bytes()
    for command in (("plan",), ("apply", "--auto-approve")):
        result = skyplan(*command)
        assert result.exit_code == 1 and "a+hub.psk is readable by others (mode 0604)" in result.output, result.output
        assert_no_piece_of([value], result.output)
    assert {p: p.read_bytes() for p in (workspace / "wireguard").rglob("*.conf")} == configs
    assert (workspace / ".skyplan/state.json").read_bytes() == state


# -- the hub's forwarding line ----------------------------------------------------------------


def _hub_text() -> str:
    peer = conf.PeerConf("a", ("stores.hub.a",), keys.public_key(keys.generate()), "192.0.2.2:51820", ("100.96.0.2/32",), 0)
    return conf.render(conf.ClusterConf("hub", "100.96.0.1/32", 51820, None, (peer,), forward=True), keys.generate())


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace(conf.FORWARD_IPV4, conf.FORWARD_IPV4 + "; touch /tmp/owned"),
        lambda t: t.replace(conf.FORWARD_IPV4, conf.FORWARD_IPV4 + " && touch /tmp/owned"),
        lambda t: t.replace(conf.FORWARD_IPV4 + "\n", conf.FORWARD_IPV4 + "\nPostUp = touch /tmp/owned\n"),
        lambda t: t.replace("PostUp = ", "PostUp = touch /tmp/owned\nPostUp = "),
        lambda t: t.replace("PostUp = ", "PreUp = touch /tmp/owned\nPostUp = "),
        lambda t: t.replace("PostUp = ", "PostDown = touch /tmp/owned\nPostUp = "),
        lambda t: t.replace("PostUp = ", "PostUp = $(touch /tmp/owned) "),
        lambda t: t.replace("PostUp = sysctl", "PostUp = %i sysctl"),
        # Python's strip() takes these as blanks, wg-quick's bash does not: it runs them as text.
        lambda t: t.replace("PostUp = sysctl", "PostUp = \u00a0sysctl"),
        lambda t: t.replace(conf.FORWARD_IPV4, conf.FORWARD_IPV4 + "\x1c"),
        lambda t: t.replace("PostUp = ", "\x1fPostUp = "),
        lambda t: t.replace("[Peer]", "\u2003[Peer]"),
        lambda t: t.replace("[Interface]", "[Interface]\u3000"),
    ],
    ids=[
        "command appended", "and-list appended", "second PostUp", "PostUp before it", "PreUp", "PostDown",
        "substitution", "%i", "no-break space", "file separator", "unit separator before the key",
        "em space before a section", "ideographic space after a section",
    ],
)
def test_an_edited_forwarding_line_or_its_surroundings_are_drift(edit) -> None:
    text = _hub_text()
    assert conf.parse(text).extra == {} and conf.parse(text).interface["forward"] == "ipv4"
    edited = edit(text)
    assert edited != text
    parsed = conf.parse(edited)
    assert parsed.extra or parsed.interface != conf.parse(text).interface or parsed.peers != conf.parse(text).peers


def test_a_forwarding_line_in_a_config_that_is_no_hub_is_drift(workspace, skyplan) -> None:
    write(workspace)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    spoke = workspace / "wireguard/a/wgsky0.conf"
    spoke.write_text(spoke.read_text().replace("[Interface]\n", f"[Interface]\nPostUp = {conf.FORWARD_BOTH}\n", 1))
    plan = skyplan("plan")
    assert "Changed outside skyplan" in plan.output and "forward" in plan.output, plan.output


def test_a_forwarding_line_padded_with_a_space_wg_quick_keeps_is_drift_and_apply_restores_it(workspace, skyplan) -> None:
    write(workspace)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    hub = workspace / "wireguard/hub/wgsky0.conf"
    original = hub.read_text()
    assert f"PostUp = {conf.FORWARD_IPV4}\n" in original and original.count("PostUp") == 1
    hub.write_text(original.replace(conf.FORWARD_IPV4, conf.FORWARD_IPV4 + "\u00a0"))
    plan = skyplan("plan")
    assert "Changed outside skyplan" in plan.output, plan.output
    assert "\u00a0" not in plan.output
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert hub.read_text() == original


# -- values that would inject a line into a wg-quick file --------------------------------------


@pytest.mark.parametrize(
    "peer",
    [
        dict(public_key="A" * 43 + "=\nPostUp = touch /tmp/owned"),
        dict(preshared_key="A" * 42 + "E=\nPostUp = touch /tmp/owned"),
        dict(endpoint="192.0.2.1:51820\nPostUp = touch /tmp/owned"),
        dict(allowed_ips=("100.96.0.2/32\nPostUp = touch /tmp/owned",)),
        dict(cluster="a\nPostUp = touch /tmp/owned"),
        dict(links=("l\nPostUp = touch /tmp/owned",)),
    ],
    ids=["public_key", "preshared_key", "endpoint", "allowed_ips", "peer name", "link name"],
)
def test_no_value_can_add_a_line_to_a_rendered_config(peer) -> None:
    fields = dict(cluster="a", links=("l",), public_key="A" * 43 + "=", endpoint=None, allowed_ips=("100.96.0.2/32",), persistent_keepalive=25)
    fields.update(peer)
    cluster = conf.ClusterConf("hub", "100.96.0.1/32", 51820, None, (conf.PeerConf(**fields),), forward=True)
    with pytest.raises(conf.UnsafeConfigError) as refused:
        conf.render(cluster, keys.generate())
    assert "touch" not in str(refused.value)


def test_a_pinned_address_with_a_line_break_is_refused_by_validate(workspace, skyplan) -> None:
    write(workspace)
    text = (workspace / "links.yaml").read_text()
    (workspace / "links.yaml").write_text(text.replace("address: 100.96.0.50", 'address: "100.96.0.50\\nPostUp = touch owned"'))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1 and "links.yaml:" in result.output and "address" in result.output, result.output
    assert not (workspace / ".skyplan").exists() and not (workspace / "wireguard").exists()


def test_an_external_key_with_a_line_break_is_refused_by_validate(workspace, skyplan) -> None:
    write(workspace, partner="zB5JQz6sh4drgW28eA6b17tyU7Fue9sXv+57ZcBWgAU=\\nPostUp = touch owned")
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1 and "links.yaml:" in result.output and "public_key" in result.output, result.output
    assert not (workspace / ".skyplan").exists() and not (workspace / "wireguard").exists()


# -- hook_timeout --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".nan", ".inf", "-1", "0", "0.5", "3601", "true", '"1e9s"', '"10h"', '"nan"', "1" + "0" * 400, "[1]", '"-5s"'])
def test_a_hook_timeout_out_of_bounds_is_a_located_error(workspace, skyplan, value) -> None:
    write(workspace)
    text = (workspace / "links.yaml").read_text()
    (workspace / "links.yaml").write_text(text.replace("  preshared_keys: true\n", f"  preshared_keys: true\n  hook_timeout: {value}\n"))
    result = skyplan("validate")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: links.yaml:5:"), result.output
    assert "Traceback" not in result.output
    assert skyplan("apply", "--auto-approve").exit_code == 1
    assert not (workspace / ".skyplan").exists()
    assert not list((workspace / "hooks").iterdir())


def test_plan_json_of_a_rotation_names_no_key(workspace, skyplan) -> None:
    write(workspace)
    skyplan("apply", "--auto-approve")
    values = psk_values(workspace)
    skyplan("plan", "--replace", "link.stores.hub.a", "--out", "r.plan")
    shown = json.loads(skyplan("show", "--json", "r.plan").output)
    assert_no_piece_of(values, json.dumps(shown))


def test_an_all_zero_key_file_is_no_key_and_is_refused_naming_the_file(workspace, skyplan) -> None:
    """32 zero bytes is what WireGuard uses when a peer has no preshared key: planted, it would
    leave the peering without one while its configs say it has one."""
    write(workspace)
    _planted(workspace, "a+hub.psk", (conf.PSK_PLACEHOLDER + "\n").encode())
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1 and "a+hub.psk does not hold a WireGuard preshared key" in result.output, result.output
    assert not (workspace / "wireguard/a/wgsky0.conf").exists()
    assert not psk.is_key(base64.b64encode(bytes(32)).decode())


def test_a_gateway_answering_an_all_zero_key_is_taken_as_holding_none() -> None:
    from skyplan_wireguard import remote

    peer = keys.public_key(keys.generate())
    assert remote.parse_preshared_keys(f"{peer}\t{conf.PSK_PLACEHOLDER}\n") == {}
    real = psk.generate()
    assert remote.parse_preshared_keys(f"{peer}\t{real}\n") == {peer: real}


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_a_special_file_in_place_of_a_key_file_is_refused_without_blocking(workspace, skyplan, kind) -> None:
    import socket

    write(workspace)
    folder = workspace / ".skyplan/keys"
    folder.mkdir(parents=True, mode=0o700)
    place = folder / "a+hub.psk"
    if kind == "fifo":
        os.mkfifo(place, 0o600)
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(place))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1 and "a+hub.psk" in result.output and "Traceback" not in result.output, result.output
    assert not (workspace / "wireguard/a/wgsky0.conf").exists()


def test_a_rename_onto_a_planted_link_moves_nothing_outside(workspace, skyplan) -> None:
    write(workspace)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    folder = workspace / ".skyplan/keys"
    key = (folder / "b+hub.psk").read_text()
    outside = workspace.parent / f"{workspace.name}-outside.psk"
    outside.write_text(psk.generate() + "\n")
    outside.chmod(0o600)
    before = outside.read_text()
    (folder / "c+hub.psk").symlink_to(outside)
    write(workspace, nat="c", moved="moved:\n  - {from: cluster.b, to: cluster.c}\n")
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1 and "c+hub.psk" in result.output, result.output
    assert outside.read_text() == before and (folder / "c+hub.psk").is_symlink()
    assert (folder / "b+hub.psk").read_text() == key
    for config in (workspace / "wireguard").rglob("*.conf"):
        assert before.strip() not in config.read_text()


def test_destroy_removes_nothing_through_a_key_file_replaced_by_a_link(workspace, skyplan) -> None:
    write(workspace)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    folder = workspace / ".skyplan/keys"
    outside = workspace.parent / f"{workspace.name}-precious"
    outside.write_text("precious\n")
    (folder / "a+hub.psk").unlink()
    (folder / "a+hub.psk").symlink_to(outside)
    result = skyplan("destroy", "--auto-approve")
    assert "Traceback" not in result.output
    assert outside.read_text() == "precious\n" and (folder / "a+hub.psk").is_symlink()
    assert result.exit_code == 1 and "a+hub.psk" in result.output, result.output
    (folder / "a+hub.psk").unlink()
    assert skyplan("destroy", "--auto-approve").exit_code == 0
    assert not list(folder.glob("*.psk"))
