"""Preshared keys and transit hubs on gateways, through skyplan's CLI, with hosts that stand in for ssh.

Each host answers remote.py's fixed scripts as an honest wg-quick host would: it keeps the config
it was pushed, and its answers go through the real host-side filters (remote.py's awk programs run
here). What is checked: both ends of a peering hold one key, kept across applies and rotated only
as asked; the controller's disk, the state and every output hold none of it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from skyplan_wireguard import keys, remote, ssh
from skyplan_wireguard.ssh import Result

HOSTS = {"a": "192.0.2.1", "b": "192.0.2.2", "c": "192.0.2.3"}
PARTNER = keys.public_key(keys.generate())
_OPERATIONS = {
    remote._INSPECT: "inspect",
    remote._ENSURE_KEY: "ensure_key",
    remote._PUSH: "push",
    remote._TEARDOWN: "teardown",
    remote._PRESHARED_KEYS: "preshared_keys",
}


def awk(program: str, text: str) -> str:
    return subprocess.run(["awk", program], input=text, capture_output=True, text=True, check=True, timeout=10).stdout


class Hosts:
    """Honest gateways by address: a key, the config last pushed (up once pushed), forwarding."""

    def __init__(self) -> None:
        self.hosts: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.lies: dict[tuple[str, str], Result] = {}  # (host, operation) -> what it answers instead, once

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        hosts = self

        def run(self, gateway, argv, stdin=None, *, check=False):
            return hosts.answer(gateway.destination.host, list(argv), stdin)

        monkeypatch.setattr(ssh.Connections, "run", run)
        monkeypatch.setattr(ssh.Connections, "connect", lambda self, gateway: None)

    def state(self, host: str) -> dict:
        return self.hosts.setdefault(host, {"key": None, "config": None, "forward": (), "routes": [], "addresses": []})

    def psks(self, name: str) -> dict[str, str]:
        """Peer public key -> preshared key in gateway `name`'s config (the test's own look)."""
        config = self.state(HOSTS[name])["config"] or ""
        return remote.parse_preshared_keys(awk(remote.PEER_PSKS_AWK, config))

    def answer(self, host: str, argv: list[str], stdin: bytes | None) -> Result:
        operation = _OPERATIONS[argv[2]]
        self.calls.append((host, operation))
        lie = self.lies.pop((host, operation), None)
        if lie is not None:
            return lie
        args = argv[4:]
        state = self.state(host)
        if operation == "ensure_key":
            if state["key"] is None or (args[1] and keys.public_key(state["key"]) == args[1]):
                state["key"] = keys.generate()
            return Result(0, (keys.public_key(state["key"]) + "\n").encode(), b"")
        if operation == "push":
            state.update(config=stdin.decode(), addresses=args[3].split(), routes=args[4].split(), forward=tuple(args[5:7]))
            return Result(0, b"", b"")
        if operation == "teardown":
            self.hosts.pop(host, None)
            return Result(0, b"", b"")
        if operation == "preshared_keys":
            if state["config"] is None:
                return Result(0, b"preshared-keys none\n", b"")
            return Result(0, ("preshared-keys live\n" + awk(remote.PEER_PSKS_AWK, state["config"])).encode(), b"")
        return Result(0, self.inspection(state, args[1], args[2]).encode(), b"")

    @staticmethod
    def inspection(state: dict, b: str, salt: str = "") -> str:
        public = keys.public_key(state["key"]) if state["key"] else None
        out = [f"{b} key " + (f"ok {public}" if public else "none")]
        if state["config"] is None:
            out += [f"{b} config_key none", f"{b} config none", f"{b} link", f"{b} dump"]
        else:
            masked = awk(remote.MASK_CONFIG_AWK, state["config"])
            out += [f"{b} config_key ok {public}", f"{b} config file", *masked.split("\n")[:-1]]
            out += [f"{b} link", "5: wgsky0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN"]
            out += [f"{b} dump", f"(hidden)\t{public}\t51820\toff"]
            with_psk = remote.parse_preshared_keys(awk(remote.PEER_PSKS_AWK, state["config"]))
            for section in state["config"].split("[Peer]")[1:]:
                key = re.search(r"PublicKey = (\S+)", section).group(1)
                endpoint = re.search(r"Endpoint = (\S+)", section)
                allowed = re.search(r"AllowedIPs = (.+)", section).group(1).replace(" ", "")
                keepalive = re.search(r"PersistentKeepalive = (\d+)", section)
                hidden = "(hidden)" if key in with_psk else "(none)"
                out.append(f"{key}\t{hidden}\t{endpoint.group(1) if endpoint else '(none)'}\t{allowed}\t0\t0\t0\t{keepalive.group(1) if keepalive else 'off'}")
        out.append(f"{b} addresses")
        out += [f"5: wgsky0    inet {a} scope global wgsky0" for a in state["addresses"]]
        out.append(f"{b} routes4")
        out += [f"{r} scope link" for r in state["routes"] if ":" not in r]
        out.append(f"{b} routes6")
        out += [f"{r} metric 1024 pref medium" for r in state["routes"] if ":" in r]
        forwarding = "1" if state["forward"][:1] == ("1",) else "0"
        out += [f"{b} forwarding {forwarding} 0", f"{b} psk_digests"]
        if state["config"] is not None and salt:
            held = remote.parse_preshared_keys(awk(remote.PEER_PSKS_AWK, state["config"]))
            out += [f"{public}\t{remote.psk_digest(salt, psk)}" for public, psk in held.items()]
        out.append(f"{b} end")
        return "\n".join(out) + "\n"


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> Hosts:
    fake = Hosts()
    fake.install(monkeypatch)
    return fake


def links_yaml(links: list[tuple[str, str, str]], *, psk_links=(), meshes: str = "", partner: bool = False, nat=()) -> str:
    """Gateways a, b, c; `links` as (name, source, target); `psk_links` want a preshared key."""
    clusters = ""
    for i, name in enumerate(HOSTS, start=1):
        clusters += f"  - name: {name}\n"
        if name not in nat:
            clusters += f"    endpoint: 192.0.2.{i}:51820\n"
        clusters += f"    subnets: [10.{i}.0.0/16]\n    gateway: ssh://root@{HOSTS[name]}\n"
    if partner:
        clusters += f"  - name: partner\n    endpoint: 198.51.100.7:51820\n    subnets: [10.9.0.0/16]\n    public_key: \"{PARTNER}\"\n"
    text = (
        "version: 1\nprovider:\n  name: wireguard\n  address_pool: 100.96.0.0/24\n"
        f"clusters:\n{clusters}"
    )
    if links:
        text += "links:\n" + "".join(
            f"  - {{name: {n}, source: {s}, target: {t}" + (", preshared_key: true" if n in psk_links else "") + "}\n" for n, s, t in links
        )
    return text + meshes


def run_ok(skyplan, *args: str, code: int = 0) -> str:
    done = skyplan(*args)
    assert done.exit_code == code, done.output
    return done.output


def public_keys(workspace: Path) -> dict[str, str]:
    import json

    state = json.loads((workspace / ".skyplan" / "state.json").read_text())
    return {r["name"]: r["computed"]["public_key"] for r in state["resources"] if r["type"] == "cluster"}


def peering_key(hosts: Hosts, workspace: Path, a: str, b: str) -> str | None:
    """The key both ends of a-b hold; fails when they differ or one has none."""
    public = public_keys(workspace)
    here, there = hosts.psks(a).get(public[b]), hosts.psks(b).get(public[a])
    assert here is not None and there is not None, f"{a}-{b}: a key is missing on an end"
    assert here == there, f"{a}-{b}: the two ends hold different keys"
    return here


def nothing_of(secrets: list[str], workspace: Path, *outputs: str) -> None:
    for path in workspace.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), f"{path.relative_to(workspace)} holds a preshared key"
    assert not list(workspace.rglob("*.psk"))
    for output in outputs:
        assert not any(s in output for s in secrets)


def test_a_peering_between_gateways_gets_one_key_on_both_ends_and_nothing_of_it_on_the_controller(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b"), ("b-c", "b", "c")], psk_links={"a-b"}))
    outputs = [run_ok(skyplan, "apply", "--auto-approve")]
    key = peering_key(hosts, workspace, "a", "b")
    assert keys.is_canonical(key)
    public = public_keys(workspace)
    assert public["c"] not in hosts.psks("b") and hosts.psks("c") == {}  # b-c wants none
    # Read back: no drift, no change, the same key; nothing of it anywhere here.
    outputs.append(run_ok(skyplan, "plan", "--detailed-exitcode"))
    assert "No changes." in outputs[-1]
    outputs += [run_ok(skyplan, "plan", "--out", "p.plan"), run_ok(skyplan, "show", "--json", "p.plan"), run_ok(skyplan, "show", "--json")]
    outputs.append(run_ok(skyplan, "apply", "--auto-approve"))
    assert "No changes." in outputs[-1]
    assert peering_key(hosts, workspace, "a", "b") == key
    nothing_of([key], workspace, *outputs)


def test_replacing_a_link_rotates_its_key_and_only_its_key(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b"), ("b-c", "b", "c")], psk_links={"a-b", "b-c"}))
    run_ok(skyplan, "apply", "--auto-approve")
    ab, bc = peering_key(hosts, workspace, "a", "b"), peering_key(hosts, workspace, "b", "c")
    assert ab != bc
    output = run_ok(skyplan, "apply", "--auto-approve", "--replace", "link.a-b")
    new_ab = peering_key(hosts, workspace, "a", "b")
    assert new_ab != ab and peering_key(hosts, workspace, "b", "c") == bc
    nothing_of([ab, new_ab, bc], workspace, output)


# (what is done by hand to a's key for b after the first apply) -> whether the next apply gives the peering a new key
BY_HAND = {
    "nothing": (lambda config, key: config, False),
    "removed on one end": (lambda config, key: config.replace(f"PresharedKey = {key}\n", ""), True),
    "another key on one end": (lambda config, key: config.replace(key, BY_HAND_KEY), True),
}
BY_HAND_KEY = keys.generate()  # a key set on a host by hand is never taken for the other end


@pytest.mark.parametrize("case", sorted(BY_HAND))
def test_a_key_missing_or_different_on_an_end_is_generated_again_for_both(workspace, skyplan, hosts, case) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}))
    run_ok(skyplan, "apply", "--auto-approve")
    key = peering_key(hosts, workspace, "a", "b")
    change, renewed = BY_HAND[case]
    host = hosts.state(HOSTS["a"])
    host["config"] = change(host["config"], key)
    # An apply that pushes both ends, and not for the link: a's subnets change (b routes them).
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}).replace("10.1.0.0/16", "10.11.0.0/16"))
    run_ok(skyplan, "apply", "--auto-approve")
    now = peering_key(hosts, workspace, "a", "b")
    assert (now != key) is renewed and now != BY_HAND_KEY


def test_a_key_removed_by_hand_is_drift_of_the_link_and_apply_gives_both_ends_a_new_one(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}))
    run_ok(skyplan, "apply", "--auto-approve")
    key = peering_key(hosts, workspace, "a", "b")
    host = hosts.state(HOSTS["b"])
    host["config"] = host["config"].replace(f"PresharedKey = {key}\n", "")
    plan = run_ok(skyplan, "plan", "--detailed-exitcode", code=2)
    assert "Changed outside skyplan:" in plan and "link.a-b" in plan and "preshared_key" in plan
    assert key not in plan
    run_ok(skyplan, "apply", "--auto-approve")
    assert peering_key(hosts, workspace, "a", "b") not in (None, key)
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")


def test_turning_a_key_off_and_on_again(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}))
    run_ok(skyplan, "apply", "--auto-approve")
    key = peering_key(hosts, workspace, "a", "b")
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")]))
    run_ok(skyplan, "apply", "--auto-approve")
    assert hosts.psks("a") == {} and hosts.psks("b") == {}
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}))
    run_ok(skyplan, "apply", "--auto-approve")
    assert peering_key(hosts, workspace, "a", "b") != key  # a key once discarded is not brought back


def test_an_unrelated_change_keeps_the_key_and_reads_it_from_the_gateways(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b"), ("b-c", "b", "c")], psk_links={"a-b"}))
    run_ok(skyplan, "apply", "--auto-approve")
    key = peering_key(hosts, workspace, "a", "b")
    hosts.calls.clear()
    # c's subnets change: b's file changes (it routes them), and b's key for a must stay the same.
    (workspace / "links.yaml").write_text(
        links_yaml([("a-b", "a", "b"), ("b-c", "b", "c")], psk_links={"a-b"}).replace("10.3.0.0/16", "10.33.0.0/16")
    )
    run_ok(skyplan, "apply", "--auto-approve")
    assert (HOSTS["b"], "push") in hosts.calls
    assert (HOSTS["a"], "push") not in hosts.calls  # a's file is the same: not touched
    assert peering_key(hosts, workspace, "a", "b") == key


def test_a_gateway_and_an_external_peer_keep_their_key_on_the_gateway_alone(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-partner", "a", "partner")], psk_links={"a-partner"}, partner=True))
    first = run_ok(skyplan, "apply", "--auto-approve")
    held = hosts.psks("a")
    assert set(held) == {PARTNER}
    key = held[PARTNER]
    config = hosts.state(HOSTS["a"])["config"]
    assert f"PublicKey = {PARTNER}" in config and "Endpoint = 198.51.100.7:51820" in config
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    again = run_ok(skyplan, "apply", "--auto-approve", "--replace", "cluster.a")  # a new key for a; the peering's key stays
    assert hosts.psks("a") == {PARTNER: key}
    nothing_of([key], workspace, first, again)
    assert not (workspace / "wireguard" / "partner").exists()


def test_a_transit_hub_gateway_is_told_to_forward_and_its_spokes_route_each_other_through_it(workspace, skyplan, hosts) -> None:
    mesh = "meshes:\n  - {name: m, clusters: [a, b, c], topology: hub, hub: a, transit: true}\n"
    (workspace / "links.yaml").write_text(links_yaml([], meshes=mesh, nat={"c"}))
    run_ok(skyplan, "apply", "--auto-approve")
    hub, b, c = (hosts.state(HOSTS[n]) for n in ("a", "b", "c"))
    assert hub["forward"] == ("1", "") and b["forward"] == c["forward"] == ("", "")
    assert "PostUp = sysctl -q -w net.ipv4.ip_forward=1\n" in hub["config"]
    # b reaches c's overlay address and subnet through the hub; the hub never dials NAT'd c.
    assert "10.3.0.0/16" in b["routes"] and "10.2.0.0/16" in c["routes"]
    c_entry = hub["config"].split("# Peer c,", 1)[1]
    assert "Endpoint" not in c_entry
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    # Forwarding turned off by hand on the hub is drift, and apply turns it on again.
    hub["forward"] = ("", "")
    plan = run_ok(skyplan, "plan", "--detailed-exitcode", code=2)
    assert "Changed outside skyplan:" in plan and "forwarding" in plan
    run_ok(skyplan, "apply", "--auto-approve")
    assert hub["forward"] == ("1", "")


def test_a_gateway_peered_with_a_local_cluster_holds_the_key_of_the_local_store(workspace, skyplan, hosts) -> None:
    text = links_yaml([("a-l", "a", "l"), ("a-b", "a", "b")], psk_links={"a-l", "a-b"})
    text = text.replace("links:\n", "  - name: l\n    endpoint: 198.51.100.20:51820\n    subnets: [10.20.0.0/16]\nlinks:\n")
    (workspace / "links.yaml").write_text(text)
    run_ok(skyplan, "apply", "--auto-approve")
    stored = (workspace / ".skyplan" / "keys" / "a+l.psk").read_text().strip()
    local_config = (workspace / "wireguard" / "l" / "wgsky0.conf").read_text()
    assert f"PresharedKey = {stored}\n" in local_config
    public = public_keys(workspace)
    assert hosts.psks("a")[public["l"]] == stored
    # The peering of two gateways has no file here; the local one's key is kept across applies.
    assert not (workspace / ".skyplan" / "keys" / "a+b.psk").exists()
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    run_ok(skyplan, "apply", "--auto-approve", "--replace", "link.a-b")
    assert hosts.psks("a")[public["l"]] == stored
    # Rotating the local peering rotates it on the gateway too, to the store's new key.
    run_ok(skyplan, "apply", "--auto-approve", "--replace", "link.a-l")
    rotated = (workspace / ".skyplan" / "keys" / "a+l.psk").read_text().strip()
    assert rotated != stored and hosts.psks("a")[public["l"]] == rotated


def test_a_renamed_gateway_keeps_its_peerings_key(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}))
    run_ok(skyplan, "apply", "--auto-approve")
    key = peering_key(hosts, workspace, "a", "b")
    text = links_yaml([("a-b", "a", "b")], psk_links={"a-b"})
    text = text.replace("  - name: a\n", "  - name: a2\n").replace("source: a,", "source: a2,")
    (workspace / "links.yaml").write_text(text + "moved:\n  - {from: cluster.a, to: cluster.a2}\n")
    run_ok(skyplan, "apply", "--auto-approve")
    public = public_keys(workspace)
    assert hosts.psks("a")[public["b"]] == key and hosts.psks("b")[public["a2"]] == key


def test_a_gateway_is_sent_the_keys_of_its_own_peerings_only(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b"), ("b-c", "b", "c")], psk_links={"a-b", "b-c"}))
    run_ok(skyplan, "apply", "--auto-approve")
    ab, bc = peering_key(hosts, workspace, "a", "b"), peering_key(hosts, workspace, "b", "c")
    assert bc not in hosts.state(HOSTS["a"])["config"] and ab not in hosts.state(HOSTS["c"])["config"]


def test_a_key_changed_by_hand_on_one_end_is_drift_though_neither_host_shows_it(workspace, skyplan, hosts) -> None:
    text = links_yaml([("a-b", "a", "b"), ("a-l", "a", "l")], psk_links={"a-b", "a-l"})
    text = text.replace("links:\n", "  - name: l\n    endpoint: 198.51.100.20:51820\n    subnets: [10.20.0.0/16]\nlinks:\n")
    (workspace / "links.yaml").write_text(text)
    run_ok(skyplan, "apply", "--auto-approve")
    key = peering_key(hosts, workspace, "a", "b")
    stored = (workspace / ".skyplan" / "keys" / "a+l.psk").read_text().strip()
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    host = hosts.state(HOSTS["b"])
    host["config"] = host["config"].replace(key, BY_HAND_KEY)  # same shape, another key: both show "(hidden)"
    host = hosts.state(HOSTS["a"])
    host["config"] = host["config"].replace(stored, BY_HAND_KEY)  # the gateway's end of the local peering
    plan = run_ok(skyplan, "plan", "--detailed-exitcode", code=2)
    drift = plan.split("Changed outside skyplan:", 1)[1].split("skyplan will perform", 1)[0]
    assert "link.a-b" in drift and "link.a-l" in drift and drift.count('"differs"') >= 2, drift
    assert not any(secret in plan for secret in (key, stored, BY_HAND_KEY))
    run_ok(skyplan, "apply", "--auto-approve")
    assert peering_key(hosts, workspace, "a", "b") not in (key, BY_HAND_KEY)
    assert hosts.psks("a")[public_keys(workspace)["l"]] == (workspace / ".skyplan" / "keys" / "a+l.psk").read_text().strip()
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")


def test_new_keys_at_either_end_keep_the_peerings_preshared_key(workspace, skyplan, hosts) -> None:
    text = links_yaml([("a-b", "a", "b"), ("a-partner", "a", "partner")], psk_links={"a-b", "a-partner"}, partner=True)
    (workspace / "links.yaml").write_text(text)
    run_ok(skyplan, "apply", "--auto-approve")
    ab, ap = peering_key(hosts, workspace, "a", "b"), hosts.psks("a")[PARTNER]
    # b gets a new key; the partner rotates its own (set elsewhere, with the same preshared key).
    rotated = keys.public_key(keys.generate())
    (workspace / "links.yaml").write_text(text.replace(PARTNER, rotated))
    run_ok(skyplan, "apply", "--auto-approve", "--replace", "cluster.b")
    assert peering_key(hosts, workspace, "a", "b") == ab
    assert hosts.psks("a") == {public_keys(workspace)["b"]: ab, rotated: ap}


def test_a_push_that_fails_on_one_end_leaves_the_next_apply_to_give_both_the_same_key(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}))
    hosts.lies[(HOSTS["b"], "push")] = Result(97, b"", b"writing /etc/wireguard/wgsky0.conf failed\n")
    failed = skyplan("apply", "--auto-approve")
    assert failed.exit_code == 1 and "writing /etc/wireguard/wgsky0.conf failed" in failed.output
    assert hosts.state(HOSTS["b"])["config"] is None and hosts.psks("a")  # a got a key, b nothing
    run_ok(skyplan, "apply", "--auto-approve")
    assert keys.is_canonical(peering_key(hosts, workspace, "a", "b"))
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")


@pytest.mark.parametrize(
    "answer",
    [
        b"preshared-keys live\n\x1b[2J" + PARTNER.encode() + b"\t(none)\n" + b"x" * 100000 + b"\n",
        b"preshared-keys live\n" + PARTNER.encode() + b"\t" + keys.generate().encode()[:-2] + b"x=\n",
    ],
)
def test_what_a_hostile_gateway_answers_for_its_keys_is_never_shown_or_taken(workspace, skyplan, hosts, answer) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}))
    run_ok(skyplan, "apply", "--auto-approve")
    key = peering_key(hosts, workspace, "a", "b")
    hosts.lies[(HOSTS["a"], "preshared_keys")] = Result(0, answer, b"")
    # a's subnets change: both ends are pushed, and a's answer holds no key for b.
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}).replace("10.1.0.0/16", "10.11.0.0/16"))
    done = run_ok(skyplan, "apply", "--auto-approve")
    assert "\x1b" not in done and "xxxxxxxxxx" not in done and "Traceback" not in done
    # Nothing a said was taken: both ends got a new key, the same.
    assert peering_key(hosts, workspace, "a", "b") != key
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")


def test_a_gateway_whose_keys_cannot_be_read_fails_its_own_change_and_its_peer_keeps_the_key(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}))
    run_ok(skyplan, "apply", "--auto-approve")
    key = peering_key(hosts, workspace, "a", "b")
    hosts.lies[(HOSTS["a"], "preshared_keys")] = Result(0, b"", b"")  # cut short: no answer
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b")], psk_links={"a-b"}).replace("10.1.0.0/16", "10.11.0.0/16"))
    done = skyplan("apply", "--auto-approve")
    assert done.exit_code == 1 and "reading the preshared keys of wgsky0 gave no answer" in done.output, done.output
    assert peering_key(hosts, workspace, "a", "b") == key  # b was pushed with the key a still holds
    run_ok(skyplan, "apply", "--auto-approve")
    assert peering_key(hosts, workspace, "a", "b") == key


def test_a_gateway_that_is_not_pushed_is_not_asked_for_its_keys(workspace, skyplan, hosts) -> None:
    (workspace / "links.yaml").write_text(links_yaml([("a-b", "a", "b"), ("b-c", "b", "c")], psk_links={"a-b"}))
    run_ok(skyplan, "apply", "--auto-approve")
    key = peering_key(hosts, workspace, "a", "b")
    hosts.calls.clear()
    # c's subnets change: b is pushed, a (a peer of b only) is neither pushed nor asked anything.
    (workspace / "links.yaml").write_text(
        links_yaml([("a-b", "a", "b"), ("b-c", "b", "c")], psk_links={"a-b"}).replace("10.3.0.0/16", "10.33.0.0/16")
    )
    run_ok(skyplan, "apply", "--auto-approve")
    assert (HOSTS["b"], "push") in hosts.calls
    assert not [op for host, op in hosts.calls if host == HOSTS["a"] and op != "inspect"]
    assert peering_key(hosts, workspace, "a", "b") == key


def test_a_transit_spokes_new_subnet_reaches_the_other_spokes_gateway(workspace, skyplan, hosts) -> None:
    mesh = "meshes:\n  - {name: m, clusters: [a, b, c], topology: hub, hub: a, transit: true}\n"
    (workspace / "links.yaml").write_text(links_yaml([], meshes=mesh, nat={"c"}))
    run_ok(skyplan, "apply", "--auto-approve")
    (workspace / "links.yaml").write_text(links_yaml([], meshes=mesh, nat={"c"}).replace("10.3.0.0/16", "10.33.0.0/16"))
    run_ok(skyplan, "apply", "--auto-approve")
    b = hosts.state(HOSTS["b"])
    assert "10.33.0.0/16" in b["routes"] and "10.3.0.0/16" not in b["routes"]
    assert "10.33.0.0/16" in b["config"].split("# Peer a,", 1)[1]
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
