"""Link phases from `wg show dump`: ACTIVE only when both ends shook hands in the last 180 s."""

from __future__ import annotations

import pytest

from skyplan.sdk import ResourceView, StatusRequest
from skyplan_wireguard.provider import WireGuardProvider
from skyplan_wireguard.settings import WireGuardSettings
from skyplan_wireguard.status import observe, parse_dump

NOW = 1_800_000_000
KEYS = {"a": "A" * 43 + "=", "b": "B" * 43 + "="}


def dump(own: str, peers: dict[str, int]) -> str:
    lines = [f"PRIVATE-NEVER-READ\t{KEYS[own]}\t51820\toff"]
    lines += [f"{KEYS[p]}\t(none)\t192.0.2.1:51820\t100.96.0.2/32\t{seen}\t10\t20\t25" for p, seen in peers.items()]
    return "\n".join(lines) + "\n"


def phase(tmp_path, dumps: dict[str, str]) -> tuple[str, str]:
    for name, text in dumps.items():
        (tmp_path / f"{name}.dump").write_text(text)
    settings = WireGuardSettings(status_command=["cat", str(tmp_path) + "/{{ cluster }}.dump"])
    provider = WireGuardProvider(settings, None)
    views = [
        ResourceView("cluster", n, {"interface": "wgsky0"}, {"public_key": KEYS[n]}) for n in ("a", "b")
    ] + [ResourceView("link", "ab", {"source": "a", "target": "b"})]
    report = observe(provider, StatusRequest(resources=views), now=NOW).statuses["link.ab"]
    condition = next(c for c in report.conditions if c["type"] == "HandshakeObserved")
    return report.phase, condition["message"]


def test_both_ends_recent_is_active(tmp_path):
    result = phase(tmp_path, {"a": dump("a", {"b": NOW - 30}), "b": dump("b", {"a": NOW - 5})})
    assert result == ("ACTIVE", "a shook hands with b 30s ago; b shook hands with a 5s ago")


@pytest.mark.parametrize(
    "dumps, words",
    [
        ({"a": dump("a", {"b": NOW - 30}), "b": dump("b", {"a": 0})}, "b has had no handshake with a"),
        ({"a": dump("a", {"b": NOW - 181}), "b": dump("b", {"a": NOW - 1})}, "a last shook hands with b 181s ago"),
        ({"a": dump("a", {}), "b": dump("b", {"a": NOW})}, "a has had no handshake with b"),
        ({"a": "garbage", "b": dump("b", {"a": NOW})}, "a: status_command output: first line is not an interface line"),
    ],
)
def test_anything_less_stays_init_and_says_why(tmp_path, dumps, words):
    result_phase, message = phase(tmp_path, dumps)
    assert result_phase == "INIT"
    assert words in message


def test_parse_dump_reads_handshakes_by_peer_key():
    parsed = parse_dump(dump("a", {"b": 123}))
    assert parsed.public_key == KEYS["a"] and parsed.handshakes == {KEYS["b"]: 123}
    with pytest.raises(ValueError):
        parse_dump("")
