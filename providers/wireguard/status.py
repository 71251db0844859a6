"""Live link status from `wg show <iface> dump`: read from each gateway over SSH, or printed by status_command."""

from __future__ import annotations

import time
from dataclasses import dataclass

from skyplan.sdk import Diagnostic, ResourceStatusReport, ResourceView, StatusRequest, StatusResponse
from skyplan_wireguard import hooks

# WireGuard re-handshakes every 2 minutes while traffic or keepalives flow; 180 s allows for one miss.
HANDSHAKE_FRESH_SECONDS = 180


@dataclass(frozen=True)
class Dump:
    public_key: str
    handshakes: dict[str, int]  # peer public key -> latest handshake, unix seconds (0 = never)


@dataclass(frozen=True)
class Unseen:
    """Why a cluster's dump could not be had: `reason` for the condition, `message` for people."""

    reason: str
    message: str
    warn: bool = False  # a gateway that did not answer: worth a warning, not only a condition


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
        # ASCII digits only: a dump may come from a hostile gateway, and str.isdigit takes "²".
        if len(fields) < 8 or not (fields[4].isascii() and fields[4].isdigit() and len(fields[4]) <= 20):
            raise ValueError("a peer line is not in `wg show dump` form")
        handshakes[fields[0]] = int(fields[4])
    return Dump(public_key=interface[1], handshakes=handshakes)


CONFIGS_WRITTEN = {"type": "ConfigWritten", "status": "True", "reason": "Applied", "message": "configs written on both ends"}
NO_STATUS_COMMAND = "handshake not observed: provider.status_command is not set"
EXTERNAL_PEER = "an external peer, managed elsewhere: skyplan does not observe it"


def observe(provider, request: StatusRequest, now: float | None = None) -> StatusResponse:
    """Each resource's phase and conditions. `now`: the time handshake ages are measured at
    (default: once every dump is in, so a slow gateway does not make old handshakes look young)."""
    clusters = {v.name: v for v in request.resources if v.type == "cluster"}
    links = [v for v in request.resources if v.type == "link"]
    template = provider.settings.status_command
    on_gateways = [v for v in clusters.values() if v.attributes.get("gateway")]
    if not template and not on_gateways:
        unknown = {"type": "HandshakeObserved", "status": "Unknown", "reason": "NoStatusCommand", "message": NO_STATUS_COMMAND}
        # Without a probe every resource reads the same: one report, shared.
        same = ResourceStatusReport("INIT", [CONFIGS_WRITTEN, unknown])
        return StatusResponse({f"{v.type}.{v.name}": same for v in request.resources})  # (address, without the call)

    # An external peer is managed elsewhere: it is never probed; its links are judged by the other end.
    external = [v for v in clusters.values() if "public_key" in v.attributes]
    local = [v for v in clusters.values() if not v.attributes.get("gateway") and "public_key" not in v.attributes]
    dumps: dict[str, Dump | Unseen] = {v.name: Unseen("ExternalPeer", EXTERNAL_PEER) for v in external}
    if on_gateways:
        dumps.update(_from_gateways(provider, on_gateways))
    if template:
        # Imported here: threads (and the logging they import) are only for probes, and
        # `skyctl get` without a status_command reads no dump at all.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=hooks.AT_ONCE) as pool:
            dumps.update(zip((v.name for v in local), pool.map(lambda view: _probe(template, view, provider.settings.hook_timeout), local)))
    else:
        dumps.update((v.name, Unseen("NoStatusCommand", f"{NO_STATUS_COMMAND} and the cluster has no gateway")) for v in local)
    now = time.time() if now is None else now

    statuses = {}
    for name, view in clusters.items():
        dump = dumps[name]
        if isinstance(dump, Dump):
            condition = {"type": "InterfaceUp", "status": "True", "reason": "Probed", "message": "interface answers"}
            statuses[view.address] = ResourceStatusReport("ACTIVE", [CONFIGS_WRITTEN, condition])
        else:
            known = "Unknown" if dump.reason == "NoStatusCommand" else "False"
            condition = {"type": "InterfaceUp", "status": known, "reason": dump.reason, "message": dump.message}
            statuses[view.address] = ResourceStatusReport("INIT", [CONFIGS_WRITTEN, condition])
    for link in links:
        statuses[link.address] = _judge(link, clusters, dumps, now)
    # Status is best effort: a gateway that did not answer is a warning, and its resources INIT.
    warnings = [Diagnostic(dump.message, severity="warning") for dump in dict.fromkeys(d for d in dumps.values() if isinstance(d, Unseen) and d.warn)]
    return StatusResponse(statuses, warnings)


def _judge(link: ResourceView, clusters: dict[str, ResourceView], dumps: dict[str, Dump | Unseen], now: float) -> ResourceStatusReport:
    """ACTIVE: both ends shook hands with each other in the last 180 s. FAILED: an end saw a
    handshake once, longer ago than that, and neither end has a fresher one. Otherwise INIT."""
    messages = []
    fresh = stale = 0
    # Handshakes are mutual: with an external peer, its other end's reading is the whole story.
    ends_seen = 2
    for here, there in (link.ends, link.ends[::-1]):
        dump = dumps.get(here)
        if dump is None:
            messages.append(f"{here}: the cluster is not in the state")
            continue
        if isinstance(dump, Unseen) and dump.reason == "ExternalPeer":
            ends_seen -= 1
            continue
        if isinstance(dump, Unseen):
            messages.append(f"{here}: {dump.message}")
            continue
        peer_key = clusters[there].computed.get("public_key") if there in clusters else None
        seen = dump.handshakes.get(peer_key) if peer_key else None
        if seen is None:
            messages.append(f"{here} has no peer {there} on its interface")
        elif seen == 0:
            messages.append(f"{here} has had no handshake with {there}")
        elif now - seen > HANDSHAKE_FRESH_SECONDS:
            stale += 1
            messages.append(f"{here} last shook hands with {there} {int(now - seen)}s ago")
        else:
            fresh += 1  # a handshake "in the future" is a clock a little ahead: fresh
            messages.append(f"{here} shook hands with {there} {max(0, int(now - seen))}s ago")
    if fresh and fresh == ends_seen:
        phase, status, reason = "ACTIVE", "True", "RecentHandshake"
    elif stale and not fresh:
        # Handshakes are mutual: one end's old one is enough to know that the tunnel has been
        # silent, even when the other end cannot be asked. A fresh one on either end means a
        # new handshake happened between the two readings, so that is not a failure.
        phase, status, reason = "FAILED", "False", "HandshakeExpired"
        messages.append(f"no handshake for more than {HANDSHAKE_FRESH_SECONDS}s")
        if all(clusters[end].attributes.get("persistent_keepalive") == 0 for end in link.ends if end in clusters):
            messages.append("persistent_keepalive is 0, so an idle link stops shaking hands")
    else:
        phase, status, reason = "INIT", "False", "NoRecentHandshake"
    condition = {"type": "HandshakeObserved", "status": status, "reason": reason, "message": "; ".join(messages)}
    return ResourceStatusReport(phase, [CONFIGS_WRITTEN, condition])


def _probe(template: list[str], cluster: ResourceView, timeout: float) -> Dump | Unseen:
    """The cluster's dump by its status_command, or why it could not be had."""
    try:
        argv = hooks.render_argv(template, {"cluster": cluster.name, "interface": cluster.attributes["interface"]})
    except ValueError as exc:
        return Unseen("ProbeFailed", f"status_command: {exc}")
    ok, output, reason = hooks.run(argv, timeout=timeout)
    if not ok:
        return Unseen("ProbeFailed", reason)
    try:
        return parse_dump(output)
    except ValueError as exc:
        return Unseen("ProbeFailed", f"status_command output: {exc}")


def _from_gateways(provider, views: list[ResourceView]) -> dict[str, Dump | Unseen]:
    """Each gateway cluster's dump, read from the gateway itself, `ssh.parallelism` at a time."""
    from skyplan_wireguard import gateways, remote, ssh

    found: dict[str, Dump | Unseen] = {}
    with ssh.Connections() as conns:
        work = gateways.run_all(
            conns, provider.settings, provider.paths.root, views, lambda gateway, view: remote.dump(conns, gateway, view.attributes["interface"])
        )
    by_name = {view.name: view for view in views}
    for name, text in work.values.items():
        try:
            found[name] = parse_dump(text)
        except ValueError as exc:
            found[name] = Unseen("ProbeFailed", f"gateway {by_name[name].attributes['gateway']}: `wg show dump`: {exc}")
    for name, error in work.errors.items():
        if isinstance(error, ssh.HostKeyError):
            # Never taken for "unreachable": a changed host key may be someone in the middle.
            found[name] = Unseen("HostKeyRefused", str(error), warn=True)
        elif isinstance(error, ssh.GatewayAddressError):
            found[name] = Unseen("GatewayInvalid", str(error))
        elif isinstance(error, ssh.UnreachableError | ssh.AuthenticationError):
            found[name] = Unseen("GatewayUnreachable", str(error), warn=True)
        else:  # the command failed on the host (no such interface, say), or the ssh config is missing
            found[name] = Unseen("ProbeFailed", str(error))
    return found
