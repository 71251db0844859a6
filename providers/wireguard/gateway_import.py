"""`skyplan import --gateway`: live WireGuard hosts read over SSH, as the importer reads files.

Each host is read once by remote.inspect (the running interface, its addresses and its config
file with PrivateKey lines removed and preshared keys hidden on the host) and becomes what a
wg-quick file would have said (`wgquick.WgQuickFile`), without its private key: the running
interface is the truth for keys, port, peers, AllowedIPs and keepalives; the config file adds
what only it knows (which peers have an Endpoint written down, the comments that name them,
MTU, and what skyplan does not carry). Preshared keys never leave the host: each comes back as
a salted digest, so that two ends can be compared without either key travelling.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path

from skyplan.sdk import Diagnostic, ImportHost, ResourceView, parse_endpoint
from skyplan_wireguard import keys, wgquick

# What a preshared key of a gateway's peer is known as: a digest with the import's salt.
DIGEST = "sha256:"
# A preshared key the host could not digest (no sha256sum there): equal to no other.
UNKNOWN = "unknown:"


@dataclass(frozen=True)
class HostReading:
    """One host as the importer uses it; `adopt_key`: its key file is to be made from the key it runs."""

    host: ImportHost
    parsed: wgquick.WgQuickFile
    adopt_key: bool


def settings_of(request_settings: dict) -> tuple[object | None, list[Diagnostic]]:
    """The WireGuardSettings whose `ssh` part reaches the hosts (ssh config, timeout)."""
    from pydantic import ValidationError

    from skyplan_wireguard.settings import WireGuardSettings

    try:
        return WireGuardSettings.model_validate({"ssh": request_settings.get("ssh", {})}), []
    except ValidationError as exc:
        return None, [Diagnostic(f"--ssh-config: {error['msg']}") for error in exc.errors()]


def display(host: ImportHost, interface: str) -> str:
    """How messages name a host's interface: scp's `HOST:PATH` of its config file."""
    from skyplan_wireguard import remote

    return f"{host.address}:{remote.WG_DIR}/{interface}.conf"


def read_hosts(conns, request, interface: str, salt: str) -> tuple[list[HostReading], list[Diagnostic]]:
    """Every host's running `interface`, or the problems that stop the import (each naming its host)."""
    from skyplan_wireguard import gateways, remote, ssh

    settings, problems = settings_of(request.settings)
    if settings is None:
        return [], problems
    root = request.root if request.root is not None else Path.cwd()
    problem = gateways.config_problem(settings, root)
    if problem:
        return [], [Diagnostic(problem.replace("provider.ssh.config", "--ssh-config", 1))]
    views = [ResourceView("cluster", host.name, {"gateway": host.address, "interface": interface}) for host in request.hosts]
    work = gateways.run_all(
        conns, settings, root, views, lambda gateway, view: remote.inspect(conns, gateway, interface, salt=salt)
    )
    readings: list[HostReading] = []
    for host in request.hosts:
        error = work.errors.get(host.name)
        if error is not None:
            text = str(error)
            if isinstance(error, ssh.GatewayAddressError):
                text = f"--gateway {host.address}: {text}"
            problems.append(Diagnostic(text if isinstance(error, ssh.GatewayError) else f"gateway {host.address}: {text}"))
            continue
        reading, found = _reading(host, interface, work.values[host.name])
        problems.extend(found)
        if reading is not None:
            readings.append(reading)
    return readings, problems


def _reading(host: ImportHost, interface: str, live) -> tuple[HostReading | None, list[Diagnostic]]:
    from skyplan_wireguard import remote

    where = display(host, interface)
    name = f"gateway {host.address}"

    def fail(message: str, line: int | None = None) -> tuple[None, list[Diagnostic]]:
        return None, [Diagnostic(message, file=where, line=line)]

    if not live.up or live.public_key is None:
        return fail(f"{name} runs no WireGuard interface {interface} (give the interface's name with --interface)")
    key_file = f"{remote.WG_DIR}/{interface}.key"
    if live.key_problem:
        return fail(f"{name}: {key_file} holds no valid WireGuard private key; nothing of it was read")
    if live.key_public is not None and live.key_public != live.public_key:
        return fail(
            f"{name}: {key_file} holds another key than the running interface {interface} has; skyplan would "
            "bring that key up on the next apply: make them the same first"
        )
    if live.config_problem:
        return fail(f"{name}: {live.config_problem}")

    found: list[Diagnostic] = []
    sections = wgquick.sections(live.config_text or "", where, found)
    if found:
        return None, [_relocated(d, live.config_key_lines) for d in found]
    sections = [_relocated_section(section, live.config_key_lines) for section in sections]
    interface_sections = [s for s in sections if s.kind == "Interface"]
    head = interface_sections[0] if interface_sections else None
    in_file: dict[str, wgquick.Section] = {}
    for section in (s for s in sections if s.kind == "Peer"):
        public = section.first("PublicKey")
        if public is not None and keys.is_canonical(public.value):
            in_file.setdefault(public.value, section)

    skipped: list[Diagnostic] = []
    peers = []
    if live.public_key in live.peers:
        return fail(f"{name}: the running interface {interface} has a peer with its own public key")
    for key in sorted(live.peers, key=lambda k: (in_file[k].line if k in in_file else 1 << 30, k)):
        peer = live.peers[key]
        section = in_file.get(key)
        allowed = []
        line = section.first("AllowedIPs").line if section is not None and section.first("AllowedIPs") else None
        for text in peer.allowed_ips:
            allowed.append((ipaddress.ip_interface(text), line))
        endpoint = None
        if section is not None:
            directive = section.first("Endpoint")
            if directive is not None:
                try:
                    parse_endpoint(directive.value)
                except ValueError:
                    return fail("Endpoint is not host:port with an IPv4 address, [IPv6] address or DNS name", directive.line)
                endpoint = (directive.value, directive.line)
        elif live.config_text is None and peer.endpoint is not None:
            # No file says where the peer is: the running interface's endpoint is where it was
            # last heard from, which is its endpoint unless it roams or sits behind a NAT.
            endpoint = (peer.endpoint, None)
            skipped.append(
                Diagnostic(
                    f"[Peer] {key}: Endpoint {peer.endpoint} is taken from the running interface ({name} has no "
                    f"config file): it is where the peer was last heard from",
                    severity="warning", file=where,
                )
            )
        keepalive_directive = section.first("PersistentKeepalive") if section is not None else None
        token = None
        if peer.has_preshared_key:
            digest = live.psk_digests.get(key)
            token = DIGEST + digest if digest else UNKNOWN + key
        peers.append(
            wgquick.Peer(
                public_key=key,
                line=section.line if section is not None else None,
                allowed_ips=tuple(allowed),
                endpoint=endpoint,
                keepalive=peer.persistent_keepalive,
                keepalive_line=keepalive_directive.line if keepalive_directive is not None else None,
                preshared_key=token,
                comments=tuple(section.comments) if section is not None else (),
            )
        )
    for key, section in in_file.items():
        if key not in live.peers:
            skipped.append(
                Diagnostic(
                    f"[Peer] {key} is not carried: the running interface {interface} has no such peer "
                    "(import adopts what runs)",
                    severity="warning", file=where, line=section.line,
                )
            )
    mtu_directive = head.first("MTU") if head is not None else None
    mtu = wgquick._number(mtu_directive, 576, 65535, where, found) if mtu_directive is not None else None
    if found:
        return None, found
    addresses = tuple((ipaddress.ip_interface(text), None) for text in live.addresses)
    if not addresses:
        return fail(f"{name}: the running interface {interface} has no address: import needs each cluster's overlay address")
    parsed = wgquick.WgQuickFile(
        display=where,
        private_key="",  # stays on the host
        public_key=live.public_key,
        private_key_line=None,
        addresses=addresses,
        listen_port=live.listen_port,
        mtu=mtu,
        mtu_line=mtu_directive.line if mtu_directive is not None else None,
        peers=tuple(peers),
        not_carried=tuple(d for d in head.directives if d.key in wgquick.NOT_CARRIED) if head is not None else (),
        interface_line=head.line if head is not None else None,
        gateway=host.address,
        notes=tuple(skipped),
    )
    if live.key_public is None:
        skipped.append(
            Diagnostic(
                f"{name} keeps the key of {interface} in no key file: import has the host copy it into {key_file} "
                "(private to root), where apply looks for it; the key itself is never read",
                severity="warning", file=where, line=live.config_key_lines[-1] if live.config_key_lines else None,
            )
        )
    parsed = replace(parsed, notes=tuple(skipped))
    return HostReading(host, parsed, adopt_key=live.key_public is None), []


def _real_line(line: int | None, dropped: tuple[int, ...]) -> int | None:
    """The line of the host's file that line `line` of its masked text is (PrivateKey lines dropped)."""
    if line is None:
        return None
    real = line
    for number in dropped:  # sorted
        if number <= real:
            real += 1
    return real


def _relocated(diagnostic: Diagnostic, dropped: tuple[int, ...]) -> Diagnostic:
    return replace(diagnostic, line=_real_line(diagnostic.line, dropped))


def _relocated_section(section: wgquick.Section, dropped: tuple[int, ...]) -> wgquick.Section:
    if not dropped:
        return section
    return wgquick.Section(
        section.kind,
        _real_line(section.line, dropped),
        [replace(d, line=_real_line(d.line, dropped)) for d in section.directives],
        list(section.comments),
    )


def adopt_keys(conns, request, interface: str, readings: list[HostReading]) -> tuple[list[str], list[Diagnostic]]:
    """Each host's key file made from the key it runs, where there is none: the hosts copied."""
    from skyplan_wireguard import gateways, remote

    settings, problems = settings_of(request.settings)
    if settings is None:
        return [], problems
    wanted = {r.host.name: r for r in readings if r.adopt_key}
    if not wanted:
        return [], []
    root = request.root if request.root is not None else Path.cwd()
    views = [ResourceView("cluster", r.host.name, {"gateway": r.host.address, "interface": interface}) for r in wanted.values()]
    work = gateways.run_all(
        conns, settings, root, views,
        lambda gateway, view: remote.adopt_key(conns, gateway, interface, wanted[view.name].parsed.public_key),
    )
    copied = [wanted[name].host.address for name, value in sorted(work.values.items()) if value]
    for name, error in sorted(work.errors.items()):
        problems.append(Diagnostic(str(error), file=wanted[name].parsed.display))
    return copied, problems
