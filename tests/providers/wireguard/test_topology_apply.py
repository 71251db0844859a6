"""Applying and refreshing the topologies of real networks on local clusters: preshared keys
generated, rotated, removed and moved; external peers left alone; transit groups rewritten
together; drift of preshared keys and of the hub's forwarding shown without a value."""

from __future__ import annotations

import pytest

from skyplan.sdk import ReadRequest, WorkspacePaths
from skyplan_wireguard import conf, psk
from skyplan_wireguard.provider import WireGuardProvider
from skyplan_wireguard.settings import WireGuardSettings
from tests.providers.wireguard.worlds import ResourceWorld, Workspace

PARTNER_KEY = "zB5JQz6sh4drgW28eA6b17tyU7Fue9sXv+57ZcBWgAU="
OTHER_PARTNER_KEY = "uBUMPXoOM7aziks+Vh2gX37m349A228D7ZEc49DkGUU="


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(WireGuardProvider(WireGuardSettings(), WorkspacePaths(root=tmp_path, data=tmp_path / ".skyplan")))


def layout(*, psk_on: bool = True, transit: bool = True, a_subnets=("10.1.0.0/16",), partner: str | None = None) -> ResourceWorld:
    """hub h, spoke a, spoke b behind NAT (no endpoint); optionally an external peer p of the hub."""
    world = ResourceWorld()
    world.cluster("h", None, ["10.0.0.0/16"], endpoint="192.0.2.1:51820", computed_key=False)
    world.cluster("a", None, list(a_subnets), endpoint="192.0.2.2:51820", computed_key=False)
    world.cluster("b", None, ["10.2.0.0/16"], computed_key=False)
    for spoke in ("a", "b"):
        world.link(f"m-h-{spoke}", "h", spoke, transit_hub="h" if transit else None, preshared_key=psk_on)
    if partner is not None:
        world.cluster("p", None, ["10.9.0.0/16"], endpoint="198.51.100.7:51820", public_key=partner, computed_key=False)
        world.link("h-p", "h", "p", preshared_key=psk_on)
    return world


def config(ws: Workspace, name: str) -> str:
    return (ws.provider.paths.root / f"wireguard/{name}/wgsky0.conf").read_text()


def stored(ws: Workspace) -> dict[str, str]:
    folder = ws.provider.paths.keys
    return {p.name: p.read_text().strip() for p in sorted(folder.glob("*.psk"))}


def psk_line(text: str, peer: str) -> str | None:
    section = text.split(f"# Peer {peer},", 1)[1].split("# Peer ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("PresharedKey = ")]
    return lines[0].removeprefix("PresharedKey = ") if lines else None


def refresh(ws: Workspace):
    return ws.provider.read(ReadRequest(list(ws.state.values())))


def test_a_hub_with_a_nat_d_spoke_and_preshared_keys_from_scratch(ws) -> None:
    results = ws.converge(layout())
    assert all(r.ok for r in results.values()), [r.error for r in results.values()]
    keys = stored(ws)
    assert sorted(keys) == ["a+h.psk", "b+h.psk"]
    folder = ws.provider.paths.keys
    assert all((folder / name).stat().st_mode & 0o777 == 0o600 for name in keys)
    hub, a, b = config(ws, "h"), config(ws, "a"), config(ws, "b")
    # The same key at both ends of each peering, a different one per peering.
    assert psk_line(hub, "a") == psk_line(a, "h") == keys["a+h.psk"]
    assert psk_line(hub, "b") == psk_line(b, "h") == keys["b+h.psk"] != keys["a+h.psk"]
    # Nobody dials b; b dials the hub and keeps its mapping alive.
    hub_entry_b = hub.split("# Peer b,", 1)[1]
    assert "Endpoint" not in hub_entry_b and "Endpoint = 192.0.2.1:51820" in b and "PersistentKeepalive = 25" in b
    # Transit: the hub forwards, each spoke reaches the other's networks through it.
    assert f"PostUp = {conf.FORWARD_IPV4}\n" in hub and "PostUp" not in a + b
    assert "AllowedIPs = 100.96.0.3/32, 10.0.0.0/16, 100.96.0.2/32, 10.2.0.0/16" in a  # h, then b
    # Files exactly as written are no drift, and the keys are in no result.
    assert refresh(ws).readings == {}
    assert all(key not in repr(results) for key in keys.values())


def test_a_replaced_link_rotates_its_peering_s_key_only(ws) -> None:
    ws.converge(layout())
    before = stored(ws)
    results = ws.converge(layout(), replace=("link.m-h-b",))
    assert all(r.ok for r in results.values())
    after = stored(ws)
    assert after["a+h.psk"] == before["a+h.psk"] and after["b+h.psk"] != before["b+h.psk"]
    assert psk_line(config(ws, "h"), "b") == psk_line(config(ws, "b"), "h") == after["b+h.psk"]
    # A plain re-apply generates nothing: a key is made once per peering.
    ws.converge(layout())
    assert stored(ws) == after


def test_a_key_goes_when_its_peering_stops_wanting_one_or_ends(ws) -> None:
    ws.converge(layout())
    world = layout()
    world.views["link.m-h-b"] = world.views["link.m-h-b"]._replace(attributes={"source": "h", "target": "b", "transit_hub": "h"})
    assert all(r.ok for r in ws.converge(world).values())
    assert sorted(stored(ws)) == ["a+h.psk"]
    assert psk_line(config(ws, "h"), "b") is None and psk_line(config(ws, "b"), "h") is None
    del world.views["link.m-h-a"]
    assert all(r.ok for r in ws.converge(world).values())
    assert stored(ws) == {}
    assert "# Peer a" not in config(ws, "h")


def test_a_key_follows_a_renamed_cluster(ws) -> None:
    ws.converge(layout())
    key = stored(ws)["b+h.psk"]
    renamed = ResourceWorld()
    for address, view in layout().views.items():
        if view.type == "cluster":
            name = "c" if view.name == "b" else view.name
            renamed.views[f"cluster.{name}"] = view._replace(name=name)
        else:
            attributes = {**view.attributes, "target": "c" if view.attributes["target"] == "b" else view.attributes["target"]}
            renamed.views[address] = view._replace(attributes=attributes)
    results = ws.converge(renamed, moved={"cluster.c": "cluster.b"})
    assert all(r.ok for r in results.values()), [r.error for r in results.values()]
    assert stored(ws)["c+h.psk"] == key and "b+h.psk" not in stored(ws)
    assert psk_line(config(ws, "c"), "h") == key == psk_line(config(ws, "h"), "c")


def test_a_crash_after_the_key_is_written_leaves_a_key_that_the_retry_uses(ws, monkeypatch) -> None:
    from skyplan import atomic

    original = atomic.Batch.commit

    def no_configs(batch, *args, **kwargs):
        added = [item[0] for item in batch._waiting] + [path for paths, _ in batch._jobs for path in paths]
        if any(path.suffix == ".conf" for path in added):
            raise SystemExit("killed")  # the run dies while the configs are being written
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(atomic.Batch, "commit", no_configs)
    with pytest.raises(SystemExit):
        ws.converge(layout())
    keys = stored(ws)
    assert sorted(keys) == ["a+h.psk", "b+h.psk"]
    monkeypatch.setattr(atomic.Batch, "commit", original)
    ws.state = {}
    assert all(r.ok for r in ws.converge(layout()).values())
    assert stored(ws) == keys
    assert psk_line(config(ws, "h"), "a") == keys["a+h.psk"]


def test_an_external_peer_gets_nothing_written_and_its_key_change_updates_its_peers(ws) -> None:
    results = ws.converge(layout(partner=PARTNER_KEY))
    assert all(r.ok for r in results.values())
    root = ws.provider.paths.root
    assert not (root / "wireguard/p").exists() and not (root / ".skyplan/keys/p.key").exists()
    assert results["cluster.p"].computed["public_key"] == PARTNER_KEY
    hub = config(ws, "h")
    assert f"PublicKey = {PARTNER_KEY}" in hub and "Endpoint = 198.51.100.7:51820" in hub
    assert psk_line(hub, "p") == stored(ws)["h+p.psk"]  # the partner is handed this key out of band
    assert refresh(ws).readings == {}
    untouched = config(ws, "a")
    results = ws.converge(layout(partner=OTHER_PARTNER_KEY))
    assert all(r.ok for r in results.values())
    assert results["cluster.p"].computed["public_key"] == OTHER_PARTNER_KEY
    assert f"PublicKey = {OTHER_PARTNER_KEY}" in config(ws, "h") and PARTNER_KEY not in config(ws, "h")
    assert config(ws, "a") == untouched


def test_a_cluster_that_becomes_an_external_peer_leaves_no_key_or_config_here(ws) -> None:
    world = layout()
    ws.converge(world)
    root = ws.provider.paths.root
    assert (root / ".skyplan/keys/a.key").exists()
    world.views["cluster.a"] = world.views["cluster.a"]._replace(attributes={**world.views["cluster.a"].attributes, "public_key": PARTNER_KEY})
    results = ws.converge(world)
    assert all(r.ok for r in results.values()), [r.error for r in results.values()]
    assert not (root / ".skyplan/keys/a.key").exists() and not (root / "wireguard/a").exists()
    assert f"PublicKey = {PARTNER_KEY}" in config(ws, "h")
    # Back to a local cluster: a key of its own again.
    world.views["cluster.a"] = layout().views["cluster.a"]
    assert all(r.ok for r in ws.converge(world).values())
    assert (root / ".skyplan/keys/a.key").exists() and PARTNER_KEY not in config(ws, "h")


def test_a_change_of_one_spoke_rewrites_every_spoke_of_its_transit_group(ws) -> None:
    ws.converge(layout())
    results = ws.converge(layout(a_subnets=("10.1.0.0/16", "10.5.0.0/16")))
    assert all(r.ok for r in results.values())
    # b's entry for the hub holds a's networks: b is rewritten though b is no peer of a.
    assert "10.5.0.0/16" in config(ws, "b")
    assert refresh(ws).readings == {}


def test_turning_transit_off_stops_the_hub_forwarding(ws) -> None:
    ws.converge(layout())
    assert all(r.ok for r in ws.converge(layout(transit=False)).values())
    assert "PostUp" not in config(ws, "h")
    assert "100.96.0.2/32" not in config(ws, "a")


def test_preshared_key_drift_shows_present_absent_or_differs_never_the_value(ws) -> None:
    ws.converge(layout())
    keys = stored(ws)
    root = ws.provider.paths.root
    hub_path, a_path = root / "wireguard/h/wgsky0.conf", root / "wireguard/a/wgsky0.conf"
    # Removed from one end by hand.
    hub_path.write_text(hub_path.read_text().replace(f"PresharedKey = {keys['a+h.psk']}\n", ""))
    # Another key at one end of the other peering.
    other = psk.generate()
    b_path = root / "wireguard/b/wgsky0.conf"
    b_path.write_text(b_path.read_text().replace(keys["b+h.psk"], other))
    readings = refresh(ws).readings
    ah = readings["link.m-h-a"]
    assert ah.expected["peer of a in h"]["preshared_key"] == "present"
    assert "preshared_key" not in ah.found["peer of a in h"]
    bh = readings["link.m-h-b"]
    assert bh.found["peer of h in b"]["preshared_key"] == "differs"
    assert bh.found["peer of b in h"]["preshared_key"] == "present"
    shown = repr(readings)
    assert other not in shown and all(key not in shown for key in keys.values())
    # A key of the store gone: the files' keys differ from what the store holds (none).
    (root / ".skyplan/keys/a+h.psk").unlink()
    a_path.write_text(a_path.read_text())
    readings = refresh(ws).readings
    assert readings["link.m-h-a"].found["peer of h in a"]["preshared_key"] == "differs"
    # The apply that puts it right (an update of the link) generates a new key, the same at both ends.
    assert all(r.ok for r in ws.converge(layout(), update=("link.m-h-a",)).values())
    new = stored(ws)["a+h.psk"]
    assert new != keys["a+h.psk"] and psk_line(config(ws, "a"), "h") == new == psk_line(config(ws, "h"), "a")


def test_a_preshared_key_added_by_hand_to_a_peering_that_wants_none_is_drift(ws) -> None:
    ws.converge(layout(psk_on=False))
    path = ws.provider.paths.root / "wireguard/a/wgsky0.conf"
    secret = psk.generate()
    path.write_text(path.read_text().replace("AllowedIPs", f"PresharedKey = {secret}\nAllowedIPs", 1))
    readings = refresh(ws).readings
    assert readings["link.m-h-a"].found["peer of h in a"]["preshared_key"] == "present"
    assert "preshared_key" not in readings["link.m-h-a"].expected["peer of h in a"]
    assert secret not in repr(readings)


def test_a_hub_whose_forwarding_line_was_removed_is_drift(ws) -> None:
    ws.converge(layout())
    path = ws.provider.paths.root / "wireguard/h/wgsky0.conf"
    path.write_text(path.read_text().replace(f"PostUp = {conf.FORWARD_IPV4}\n", ""))
    reading = refresh(ws).readings["cluster.h"]
    assert reading.expected["interface"]["forward"] == "ipv4" and "forward" not in reading.found["interface"]


def test_a_preshared_key_file_others_can_read_stops_the_plan_and_the_apply(ws) -> None:
    ws.converge(layout())
    file = ws.provider.paths.keys / "a+h.psk"
    file.chmod(0o644)
    diagnostics = refresh(ws).diagnostics
    assert any("a+h.psk is readable by others (mode 0644)" in d.message for d in diagnostics)
    secret = file.read_text().strip()
    results = ws.converge(layout(), replace=("link.m-h-b",))
    # The hub's file holds that key too: the change that rewrites it fails, naming the file.
    assert not results["link.m-h-b"].ok
    assert "a+h.psk is readable by others" in results["link.m-h-b"].error
    assert secret not in repr(diagnostics) + repr(results)
    assert file.read_text().strip() == secret


def test_pinned_addresses_are_applied(ws) -> None:
    world = layout()
    world.views["cluster.b"] = world.views["cluster.b"]._replace(attributes={**world.views["cluster.b"].attributes, "address": "100.96.0.7"})
    results = ws.converge(world)
    assert results["cluster.b"].computed["address"] == "100.96.0.7"
    assert "Address = 100.96.0.7/32" in config(ws, "b") and "100.96.0.7/32" in config(ws, "h")
