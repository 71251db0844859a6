"""Live link status from `wg show <iface> dump`, as printed by the configured status_command."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from skyplan.sdk import ResourceStatusReport, StatusRequest, StatusResponse
from skyplan_wireguard import hooks

# WireGuard re-handshakes every 2 minutes while traffic or keepalives flow; 180 s allows for one miss.
HANDSHAKE_FRESH_SECONDS = 180


@dataclass(frozen=True)
class Dump:
    public_key: str
    handshakes: dict[str, int]  # peer public key -> latest handshake, unix seconds (0 = never)


def parse_dump(text: str) -> Dump:
    """First line: the interface; then one tab-separated line per peer (wg(8), `dump`)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("empty output")
    interface = lines[0].split("\t")
    if len(interface) < 4:
        raise ValueError("first line is not an interface line of `wg show dump`")
    handshakes = {}
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) < 8 or not fields[4].isdigit():
            raise ValueError("a peer line is not in `wg show dump` form")
        handshakes[fields[0]] = int(fields[4])
    return Dump(public_key=interface[1], handshakes=handshakes)


def observe(provider, request: StatusRequest, now: float | None = None) -> StatusResponse:
    now = time.time() if now is None else now
    clusters = {v.name: v for v in request.resources if v.type == "cluster"}
    links = [v for v in request.resources if v.type == "link"]
    template = provider.settings.status_command
    configs_written = {"type": "ConfigWritten", "status": "True", "reason": "Applied", "message": "configs written on both ends"}
    if not template:
        unknown = {
            "type": "HandshakeObserved",
            "status": "Unknown",
            "reason": "NoStatusCommand",
            "message": "handshake not observed: provider.status_command is not set",
        }
        # Without a probe every resource reads the same: one report, shared.
        same = ResourceStatusReport("INIT", [configs_written, unknown])
        return StatusResponse({v.address: same for v in request.resources})

    needed = sorted({end for v in links for end in v.ends} | set(clusters))
    needed = [name for name in needed if name in clusters]
    with ThreadPoolExecutor(max_workers=8) as pool:
        dumps = dict(zip(needed, pool.map(lambda name: _probe(template, clusters[name]), needed)))

    statuses = {}
    for name, view in clusters.items():
        dump = dumps.get(name)
        if isinstance(dump, Dump):
            statuses[view.address] = ResourceStatusReport(
                "ACTIVE", [configs_written, {"type": "InterfaceUp", "status": "True", "reason": "Probed", "message": "interface answers"}]
            )
        else:
            statuses[view.address] = ResourceStatusReport(
                "INIT", [configs_written, {"type": "InterfaceUp", "status": "False", "reason": "ProbeFailed", "message": str(dump)}]
            )
    for link in links:
        ends = link.ends
        messages = []
        fresh = True
        for here, there in (ends, ends[::-1]):
            dump = dumps.get(here)
            peer_key = clusters[there].computed.get("public_key") if there in clusters else None
            if not isinstance(dump, Dump):
                fresh = False
                messages.append(f"{here}: {dump}")
                continue
            seen = dump.handshakes.get(peer_key or "", 0)
            if seen == 0:
                fresh = False
                messages.append(f"{here} has had no handshake with {there}")
            elif now - seen > HANDSHAKE_FRESH_SECONDS:
                fresh = False
                messages.append(f"{here} last shook hands with {there} {int(now - seen)}s ago")
            else:
                messages.append(f"{here} shook hands with {there} {max(0, int(now - seen))}s ago")
        condition = {
            "type": "HandshakeObserved",
            "status": "True" if fresh else "False",
            "reason": "RecentHandshake" if fresh else "NoRecentHandshake",
            "message": "; ".join(messages),
        }
        statuses[link.address] = ResourceStatusReport("ACTIVE" if fresh else "INIT", [configs_written, condition])
    return StatusResponse(statuses)


def _probe(template: list[str], cluster) -> Dump | str:
    """The cluster's dump, or why it could not be had (as text, shown in conditions)."""
    try:
        argv = hooks.render_argv(template, {"cluster": cluster.name, "interface": cluster.attributes["interface"]})
    except ValueError as exc:
        return f"status_command: {exc}"
    ok, output, reason = hooks.run(argv, timeout=10)
    if not ok:
        return reason
    try:
        return parse_dump(output)
    except ValueError as exc:
        return f"status_command output: {exc}"
