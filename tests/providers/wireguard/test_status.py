"""Link phases from `wg show dump`: ACTIVE when both ends shook hands in the last 180 s, FAILED
when the last handshake is older than that, INIT otherwise; dumps from status_command or gateways."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from skyplan.sdk import ResourceView, StatusRequest, WorkspacePaths
from skyplan_wireguard import remote, ssh
from skyplan_wireguard.provider import WireGuardProvider
from skyplan_wireguard.settings import SshSettings, WireGuardSettings
from skyplan_wireguard.status import HANDSHAKE_FRESH_SECONDS, observe, parse_dump

NOW = 1_800_000_000
KEYS = {"a": "A" * 43 + "=", "b": "B" * 43 + "=", "c": "C" * 43 + "="}


def dump(own: str, peers: dict[str, int], private: str = "PRIVATE-NEVER-READ", preshared: str = "(none)") -> str:
    lines = [f"{private}\t{KEYS[own]}\t51820\toff"]
    lines += [f"{KEYS[p]}\t{preshared}\t192.0.2.1:51820\t100.96.0.2/32\t{seen}\t10\t20\t25" for p, seen in peers.items()]
    return "\n".join(lines) + "\n"


def cluster(name: str, **attributes) -> ResourceView:
    return ResourceView("cluster", name, {"interface": "wgsky0", "persistent_keepalive": 25, **attributes}, {"public_key": KEYS[name]})


def link(source: str = "a", target: str = "b") -> ResourceView:
    return ResourceView("link", source + target, {"source": source, "target": target})


def observed(tmp_path, dumps: dict[str, str], views=None, now=NOW):
    for name, text in dumps.items():
        (tmp_path / f"{name}.dump").write_text(text)
    settings = WireGuardSettings(status_command=["cat", str(tmp_path) + "/{{ cluster }}.dump"])
    provider = WireGuardProvider(settings, None)
    views = views or [cluster("a"), cluster("b"), link()]
    return observe(provider, StatusRequest(resources=views), now=now)


def phase(tmp_path, dumps: dict[str, str], views=None) -> tuple[str, str]:
    report = observed(tmp_path, dumps, views).statuses["link.ab"]
    condition = next(c for c in report.conditions if c["type"] == "HandshakeObserved")
    return report.phase, condition["message"]


def test_both_ends_recent_is_active(tmp_path):
    result = phase(tmp_path, {"a": dump("a", {"b": NOW - 30}), "b": dump("b", {"a": NOW - 5})})
    assert result == ("ACTIVE", "a shook hands with b 30s ago; b shook hands with a 5s ago")


# (a's latest handshake with b, b's with a) -> phase. 0 = never; None = no peer entry at all.
PHASES = [
    pytest.param(NOW - 30, NOW - 5, "ACTIVE", id="both-fresh"),
    pytest.param(NOW - HANDSHAKE_FRESH_SECONDS, NOW, "ACTIVE", id="exactly-180s-is-still-fresh"),
    pytest.param(NOW + 3, NOW - 1, "ACTIVE", id="a-clock-a-little-ahead"),
    pytest.param(NOW - 181, NOW - 179, "INIT", id="one-fresh-one-just-stale: a new handshake between readings"),
    pytest.param(NOW - 400, NOW - 398, "FAILED", id="both-stale: was active once"),
    pytest.param(NOW - 181, 0, "FAILED", id="stale-and-reset: b restarted and never shook hands again"),
    pytest.param(NOW - 3600, None, "FAILED", id="stale-and-peer-removed-on-b"),
    pytest.param(0, 0, "INIT", id="never"),
    pytest.param(NOW - 30, 0, "INIT", id="fresh-and-never"),
    pytest.param(None, None, "INIT", id="no-peers"),
]


@pytest.mark.parametrize("a_seen, b_seen, expected", PHASES)
def test_phase_from_handshakes(tmp_path, a_seen, b_seen, expected):
    a_peers = {} if a_seen is None else {"b": a_seen}
    b_peers = {} if b_seen is None else {"a": b_seen}
    assert phase(tmp_path, {"a": dump("a", a_peers), "b": dump("b", b_peers)})[0] == expected


def test_failed_keeps_the_reason_in_its_condition(tmp_path):
    report = observed(tmp_path, {"a": dump("a", {"b": NOW - 400}), "b": dump("b", {"a": 0})}).statuses["link.ab"]
    assert report.phase == "FAILED"
    condition = next(c for c in report.conditions if c["type"] == "HandshakeObserved")
    assert condition["status"] == "False" and condition["reason"] == "HandshakeExpired"
    assert condition["message"] == (
        "a last shook hands with b 400s ago; b has had no handshake with a; no handshake for more than 180s"
    )


def test_failed_without_keepalive_says_an_idle_link_goes_quiet(tmp_path):
    views = [cluster("a", persistent_keepalive=0), cluster("b", persistent_keepalive=0), link()]
    result = phase(tmp_path, {"a": dump("a", {"b": NOW - 400}), "b": dump("b", {"a": NOW - 400})}, views)
    assert result[0] == "FAILED" and "persistent_keepalive is 0, so an idle link stops shaking hands" in result[1]
    with_keepalive = phase(tmp_path, {"a": dump("a", {"b": NOW - 400}), "b": dump("b", {"a": NOW - 400})})
    assert "persistent_keepalive" not in with_keepalive[1]


@pytest.mark.parametrize(
    "dumps, words",
    [
        ({"a": dump("a", {"b": NOW - 30}), "b": dump("b", {"a": 0})}, "b has had no handshake with a"),
        ({"a": dump("a", {"b": NOW - 181}), "b": dump("b", {"a": NOW - 1})}, "a last shook hands with b 181s ago"),
        ({"a": dump("a", {}), "b": dump("b", {"a": NOW})}, "a has no peer b on its interface"),
        ({"a": "garbage", "b": dump("b", {"a": NOW})}, "a: status_command output: first line is not an interface line"),
    ],
)
def test_anything_less_stays_init_and_says_why(tmp_path, dumps, words):
    result_phase, message = phase(tmp_path, dumps)
    assert result_phase == "INIT"
    assert words in message


def test_an_end_that_cannot_be_read_leaves_the_other_ends_word(tmp_path):
    # b's dump fails: a's fresh handshake is not enough for ACTIVE, a's old one is FAILED.
    assert phase(tmp_path, {"a": dump("a", {"b": NOW - 5}), "b": "garbage"})[0] == "INIT"
    result = phase(tmp_path, {"a": dump("a", {"b": NOW - 900}), "b": "garbage"})
    assert result[0] == "FAILED" and "b: status_command output" in result[1]


def test_parse_dump_reads_handshakes_by_peer_key():
    parsed = parse_dump(dump("a", {"b": 123}))
    assert parsed.public_key == KEYS["a"] and parsed.handshakes == {KEYS["b"]: 123}
    with pytest.raises(ValueError):
        parse_dump("")


def test_parse_dump_reads_a_gateways_dump_with_keys_hidden():
    parsed = parse_dump(dump("a", {"b": 1_700_000_000, "c": 0}, private="(hidden)", preshared="(hidden)"))
    assert parsed == parse_dump(dump("a", {"b": 1_700_000_000, "c": 0}))


@pytest.mark.parametrize(
    "text",
    [
        "\n\n",
        "just one field\n",
        dump("a", {}) + "short\tline\n",
        dump("a", {"b": 1}).replace("\t1\t", "\tsoon\t"),
        dump("a", {"b": 1}).replace("\t1\t", "\t\u0661\u0667\u0660\u0660\t"),  # Arabic-Indic digits: isdigit() says yes
        dump("a", {"b": 1}).replace("\t1\t", "\t²\t"),
        dump("a", {"b": 1}).replace("\t1\t", "\t" + "9" * 5000 + "\t"),
    ],
)
def test_parse_dump_refuses_what_is_not_a_dump(text):
    with pytest.raises(ValueError):
        parse_dump(text)


# -- from gateways -------------------------------------------------------------------------------


@pytest.fixture
def gateways(monkeypatch):
    """Stands in for remote.dump: `gateways.answers[address]` is the dump text, or the GatewayError to raise.

    Everything else is real: the Gateway built from the ssh settings, Connections, run_many.
    """
    answers: dict[str, str | Exception] = {}
    calls: list[tuple[str, str, object, float]] = []
    busy = {"now": 0, "most": 0}
    lock = threading.Lock()

    def fake_dump(conns, gateway, interface):
        assert isinstance(conns, ssh.Connections)
        with lock:
            calls.append((gateway.address, interface, gateway.config, gateway.timeout))
            busy["now"] += 1
            busy["most"] = max(busy["most"], busy["now"])
        time.sleep(0.02)  # long enough for the pool to overlap calls if it would
        with lock:
            busy["now"] -= 1
        answer = answers[gateway.address]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(remote, "dump", fake_dump)
    return SimpleNamespace(answers=answers, calls=calls, busy=busy)


def on_gateways(tmp_path, parallelism: int = 10, status_command=None, config: str = "ssh_config", make_config: bool = True) -> WireGuardProvider:
    if make_config and not (tmp_path / config).exists():
        (tmp_path / config).write_text("Host *\n  BatchMode yes\n")
    settings = WireGuardSettings(status_command=status_command, ssh=SshSettings(config=config, parallelism=parallelism, timeout="7s"))
    return WireGuardProvider(settings, WorkspacePaths(root=tmp_path, data=tmp_path / ".skyplan"))


def gateway_views(*names: str, links=(("a", "b"),)):
    return [cluster(n, gateway=f"gw-{n}") for n in names] + [link(s, t) for s, t in links]


def test_gateways_give_their_own_handshakes_without_a_status_command(tmp_path, gateways):
    gateways.answers.update({"gw-a": dump("a", {"b": NOW - 20}, private="(hidden)"), "gw-b": dump("b", {"a": NOW - 400})})
    response = observe(on_gateways(tmp_path), StatusRequest(gateway_views("a", "b")), now=NOW)
    assert sorted(gateways.calls) == [("gw-a", "wgsky0", tmp_path / "ssh_config", 7.0), ("gw-b", "wgsky0", tmp_path / "ssh_config", 7.0)]
    assert response.statuses["cluster.a"].phase == "ACTIVE"
    report = response.statuses["link.ab"]
    assert report.phase == "INIT"  # one end fresh: a handshake happened between the two readings
    gateways.answers["gw-a"] = dump("a", {"b": NOW - 402})
    report = observe(on_gateways(tmp_path), StatusRequest(gateway_views("a", "b")), now=NOW).statuses["link.ab"]
    assert report.phase == "FAILED"
    assert report.conditions[-1]["message"].startswith("a last shook hands with b 402s ago; b last shook hands with a 400s ago")
    assert observe(on_gateways(tmp_path), StatusRequest(gateway_views("a", "b")), now=NOW - 390).statuses["link.ab"].phase == "ACTIVE"


def test_gateways_are_read_parallelism_at_a_time(tmp_path, gateways):
    names = [f"c{i}" for i in range(7)]
    KEYS.update({n: n.upper().ljust(43, "A") + "=" for n in names})
    gateways.answers.update({f"gw-{n}": dump(n, {}) for n in names})
    response = observe(on_gateways(tmp_path, parallelism=3), StatusRequest(gateway_views(*names, links=())), now=NOW)
    assert len(gateways.calls) == 7 and gateways.busy["most"] == 3
    assert {r.phase for r in response.statuses.values()} == {"ACTIVE"}


@pytest.mark.parametrize(
    "error, reason, words",
    [
        (ssh.UnreachableError("gw-b", "unreachable: ssh: connect to host 192.0.2.2 port 22: Connection refused"), "GatewayUnreachable",
         "gateway gw-b: unreachable: ssh: connect to host 192.0.2.2 port 22: Connection refused"),
        (ssh.GatewayTimeoutError("gw-b", "no answer within 7 s (connection)"), "GatewayUnreachable", "gateway gw-b: no answer within 7 s"),
        (ssh.AuthenticationError("gw-b", "login refused: root@192.0.2.2: Permission denied (publickey)."), "GatewayUnreachable",
         "gateway gw-b: login refused"),
    ],
)  # fmt: skip
def test_a_gateway_that_does_not_answer_is_init_named_with_its_error(tmp_path, gateways, error, reason, words):
    gateways.answers.update({"gw-a": dump("a", {"b": NOW - 10}), "gw-b": error})
    response = observe(on_gateways(tmp_path), StatusRequest(gateway_views("a", "b")), now=NOW)
    b = response.statuses["cluster.b"]
    assert b.phase == "INIT"
    condition = b.conditions[-1]
    assert (condition["type"], condition["status"], condition["reason"]) == ("InterfaceUp", "False", reason)
    assert condition["message"].startswith(words)
    link_report = response.statuses["link.ab"]
    assert link_report.phase == "INIT" and f"b: {words}" in link_report.conditions[-1]["message"]
    assert response.statuses["cluster.a"].phase == "ACTIVE", "one gateway down leaves the others' status alone"
    assert [(d.severity, d.message.startswith(words)) for d in response.diagnostics] == [("warning", True)]


def test_a_host_key_refusal_says_host_key_and_stops_what_had_not_started(tmp_path, gateways):
    refusal = ssh.HostKeyError("gw-a", "host key not accepted: REMOTE HOST IDENTIFICATION HAS CHANGED (check known_hosts)")
    gateways.answers.update({"gw-a": refusal, "gw-b": dump("b", {"a": NOW - 1})})
    response = observe(on_gateways(tmp_path, parallelism=1), StatusRequest(gateway_views("a", "b")), now=NOW)
    a, b = (response.statuses[f"cluster.{n}"].conditions[-1] for n in "ab")
    assert a["reason"] == "HostKeyRefused" and a["message"].startswith("gateway gw-a: host key not accepted")
    # As in plan and apply: a refused host key may be someone in the middle; nothing after it runs.
    assert [c[0] for c in gateways.calls] == ["gw-a"]
    assert b["reason"] == "HostKeyRefused" and b["message"] == f"gateway gw-b: not attempted: {refusal}"
    assert {d.severity for d in response.diagnostics} == {"warning"} and len(response.diagnostics) == 2
    assert response.statuses["link.ab"].phase == "INIT"


def test_an_unreachable_gateway_through_the_real_ssh_client(tmp_path):
    """No stand-in at all: remote.dump through ssh, which finds nothing listening on port 1."""
    (tmp_path / "ssh_config").write_text(f"Host *\n  UserKnownHostsFile {tmp_path}/known_hosts\n  GlobalKnownHostsFile /dev/null\n")
    views = [cluster("a", gateway="ssh://root@127.0.0.1:1")]
    condition = observe(on_gateways(tmp_path), StatusRequest(views), now=NOW).statuses["cluster.a"].conditions[-1]
    assert condition["reason"] == "GatewayUnreachable"
    assert condition["message"].startswith("gateway ssh://root@127.0.0.1:1: unreachable:") and "refused" in condition["message"]


def test_a_missing_ssh_config_is_named_and_nothing_is_tried(tmp_path, gateways):
    views = gateway_views("a", "b")
    response = observe(on_gateways(tmp_path, config="nowhere/ssh_config", make_config=False), StatusRequest(views), now=NOW)
    assert gateways.calls == []
    message = response.statuses["cluster.a"].conditions[-1]["message"]
    assert "provider.ssh.config: nowhere/ssh_config is not a file" in message
    assert response.statuses["link.ab"].phase == "INIT"


def test_a_gateway_text_ssh_would_misread_is_never_run(tmp_path, gateways):
    # From a state anyone with database access can write: refused before ssh sees it.
    views = [cluster("a", gateway="-oProxyCommand=touch"), cluster("b", gateway="gw-b"), link()]
    gateways.answers["gw-b"] = dump("b", {"a": NOW - 1})
    response = observe(on_gateways(tmp_path), StatusRequest(views), now=NOW)
    assert [c[0] for c in gateways.calls] == ["gw-b"]
    condition = response.statuses["cluster.a"].conditions[-1]
    assert condition["reason"] == "GatewayInvalid" and "would read as an option" in condition["message"]
    assert response.statuses["link.ab"].phase == "INIT"


def test_gateway_and_local_clusters_together(tmp_path, gateways):
    (tmp_path / "b.dump").write_text(dump("b", {"a": NOW - 2}))
    gateways.answers["gw-a"] = dump("a", {"b": NOW - 3})
    views = [cluster("a", gateway="gw-a"), cluster("b"), link()]
    both = on_gateways(tmp_path, status_command=["cat", str(tmp_path) + "/{{ cluster }}.dump"])
    assert observe(both, StatusRequest(views), now=NOW).statuses["link.ab"].phase == "ACTIVE"
    only_gateways = observe(on_gateways(tmp_path), StatusRequest(views), now=NOW)
    report = only_gateways.statuses["link.ab"]
    assert report.phase == "INIT"
    assert "b: handshake not observed: provider.status_command is not set and the cluster has no gateway" in report.conditions[-1]["message"]
    assert only_gateways.statuses["cluster.b"].conditions[-1]["status"] == "Unknown"
    assert [c[0] for c in gateways.calls] == ["gw-a", "gw-a"]


def test_what_a_hostile_gateway_prints_is_never_quoted(tmp_path, gateways):
    forged = dump("a", {"b": NOW}).replace(f"\t{NOW}\t", "\t\x1b[2J\x1b[31mACTIVE\t")
    gateways.answers.update({"gw-a": forged, "gw-b": dump("b", {"a": NOW - 1})})
    response = observe(on_gateways(tmp_path), StatusRequest(gateway_views("a", "b")), now=NOW)
    text = repr(response)
    assert "\\x1b" not in text and "\x1b" not in text and "[2J" not in text
    assert response.statuses["cluster.a"].conditions[-1]["reason"] == "ProbeFailed"
    assert response.statuses["link.ab"].phase == "INIT"


def test_an_external_peer_is_never_probed_and_its_links_are_judged_by_the_other_end(tmp_path):
    partner = ResourceView("cluster", "b", {"interface": "wgsky0", "persistent_keepalive": 25, "public_key": KEYS["b"]}, {"public_key": KEYS["b"]})
    # No b.dump: a probe of b would fail and say so.
    report = observed(tmp_path, {"a": dump("a", {"b": NOW - 30})}, [cluster("a"), partner, link()])
    assert report.statuses["link.ab"].phase == "ACTIVE"
    assert report.statuses["cluster.b"].conditions[1]["reason"] == "ExternalPeer"
    assert report.diagnostics == []
    stale = observed(tmp_path, {"a": dump("a", {"b": NOW - 600})}, [cluster("a"), partner, link()])
    assert stale.statuses["link.ab"].phase == "FAILED"
    never = observed(tmp_path, {"a": dump("a", {"b": 0})}, [cluster("a"), partner, link()])
    assert never.statuses["link.ab"].phase == "INIT"
