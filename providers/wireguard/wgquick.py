"""wg-quick files that another tool (or a person) wrote, read strictly and with line numbers, for import.

conf.py reads back files skyplan wrote, to show drift; this reads any wg-quick file once, to adopt
it. Every problem is a diagnostic naming the file and the line. None quotes the line itself: the
file may be anything (a symlink into a secret, a key pasted in the wrong place), so a message says
which directive and what is wrong with it, and shows a value only once it parsed as what the
directive holds and is no secret (a port, an address, an endpoint).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from skyplan.sdk import Diagnostic, parse_endpoint
from skyplan_wireguard import keys

# wg-quick's directives (matched without regard to case, as wg-quick does), per section.
INTERFACE_KEYS = (
    "PrivateKey", "Address", "ListenPort", "MTU", "DNS", "Table", "PreUp", "PostUp", "PreDown", "PostDown",
    "SaveConfig", "FwMark",
)  # fmt: skip
PEER_KEYS = ("PublicKey", "PresharedKey", "AllowedIPs", "Endpoint", "PersistentKeepalive")
# Directives that may be given more than once in a section (wg-quick joins or runs each).
REPEATABLE = {"Address", "AllowedIPs", "DNS", "PreUp", "PostUp", "PreDown", "PostDown"}
# Directives skyplan does not write: carried by nothing, each named by import.
NOT_CARRIED = {
    "DNS": "skyplan sets no DNS servers",
    "Table": "skyplan leaves routing to wg-quick's default table",
    "PreUp": "skyplan runs no commands from a config",
    "PostUp": "skyplan runs no commands from a config",
    "PreDown": "skyplan runs no commands from a config",
    "PostDown": "skyplan runs no commands from a config",
    "SaveConfig": "skyplan's file is the configuration; the interface never writes it back",
    "FwMark": "skyplan sets no firewall mark",
}
_CANONICAL = {name.lower(): (name, True) for name in INTERFACE_KEYS} | {name.lower(): (name, False) for name in PEER_KEYS}
# Lines of a file: more than any real interface needs, so a huge file stops early.
MAX_LINES = 100_000


@dataclass(frozen=True)
class Directive:
    key: str  # canonical spelling: ListenPort
    value: str
    line: int


@dataclass
class Section:
    kind: str  # "Interface" or "Peer"
    line: int
    directives: list[Directive] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # comment lines above the header and inside it

    def first(self, key: str) -> Directive | None:
        return next((d for d in self.directives if d.key == key), None)

    def every(self, key: str) -> list[Directive]:
        return [d for d in self.directives if d.key == key]


@dataclass(frozen=True)
class Peer:
    public_key: str
    line: int  # of its [Peer] header
    allowed_ips: tuple[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, int], ...]  # (value, line)
    endpoint: tuple[str, int] | None
    keepalive: int
    keepalive_line: int | None
    preshared_key: str | None  # a secret: never shown
    comments: tuple[str, ...]

    def __repr__(self) -> str:  # a failed assertion or a traceback must not carry the preshared key
        return f"Peer(public_key={self.public_key!r}, line={self.line})"


@dataclass(frozen=True)
class WgQuickFile:
    display: str
    private_key: str  # a secret: never shown
    public_key: str
    private_key_line: int
    addresses: tuple[tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, int], ...]
    listen_port: int | None
    mtu: int | None
    mtu_line: int | None
    peers: tuple[Peer, ...]
    not_carried: tuple[Directive, ...]  # DNS, PostUp, … in file order (values never shown)
    interface_line: int
    # A live host's interface (gateway_import.py): its key stays there (private_key is ""), and
    # its peers' preshared keys are digests. `notes`: what reading it could not carry as it is.
    gateway: str | None = None
    notes: tuple[Diagnostic, ...] = ()

    def __repr__(self) -> str:
        return f"WgQuickFile(display={self.display!r}, public_key={self.public_key!r})"


def _problem(display: str, line: int | None, message: str) -> Diagnostic:
    return Diagnostic(message, file=display, line=line)


def sections(text: str, display: str, found: list[Diagnostic]) -> list[Section]:
    """The sections of `text`, as wg-quick reads them: '#' starts a comment anywhere on a line."""
    result: list[Section] = []
    pending_comments: list[str] = []
    current: Section | None = None
    lines = text.split("\n")
    if len(lines) > MAX_LINES:
        found.append(_problem(display, None, f"more than {MAX_LINES} lines; no WireGuard interface needs that many"))
        return []
    for number, raw in enumerate(lines, start=1):
        raw = raw.removesuffix("\r")
        content, hash_sign, comment = raw.partition("#")
        line = content.strip()
        if not line:
            if hash_sign:
                pending_comments.append(comment.strip())
            else:
                pending_comments = []  # a blank line ends the comment block above a header
            continue
        if line.startswith("["):
            kind = {"[interface]": "Interface", "[peer]": "Peer"}.get(line.lower())
            if kind is None:
                found.append(_problem(display, number, "this line is a section header wg-quick does not know ([Interface] or [Peer] only)"))
                current = None
                continue
            current = Section(kind, number, comments=pending_comments)
            pending_comments = []
            result.append(current)
            continue
        if current is not None:
            current.comments.extend(pending_comments)  # comment lines inside the section
        pending_comments = []
        key, sep, value = line.partition("=")
        canonical = _CANONICAL.get(key.strip().lower())
        if not sep or canonical is None:
            found.append(_problem(display, number, "this line is not a wg-quick directive (Key = value)"))
            continue
        name, of_interface = canonical
        if current is None:
            found.append(_problem(display, number, f"{name} is outside any [Interface] or [Peer] section"))
            continue
        if of_interface != (current.kind == "Interface"):
            found.append(_problem(display, number, f"{name} does not belong in a [{current.kind}] section"))
            continue
        if hash_sign:
            current.comments.append(comment.strip())
        earlier = current.first(name)
        if earlier is not None and name not in REPEATABLE:
            found.append(_problem(display, number, f"{name} is given twice in this section (first at line {earlier.line})"))
            continue
        current.directives.append(Directive(name, value.strip(), number))
    return result


def read(text: str, display: str) -> tuple[WgQuickFile | None, list[Diagnostic]]:
    """The interface `text` describes, or None with every problem found (each located)."""
    found: list[Diagnostic] = []
    parsed = sections(text, display, found)
    interfaces = [s for s in parsed if s.kind == "Interface"]
    if not interfaces and not found:
        found.append(_problem(display, None, "no [Interface] section: this is not a wg-quick configuration"))
    for extra in interfaces[1:]:
        found.append(_problem(display, extra.line, f"a second [Interface] section (the first is at line {interfaces[0].line})"))
    if not interfaces:
        return None, found
    interface = interfaces[0]

    private = interface.first("PrivateKey")
    private_key = public_key = ""
    if private is None:
        found.append(_problem(display, interface.line, "[Interface] has no PrivateKey: import needs each cluster's own key"))
    elif not keys.is_canonical(private.value):
        found.append(_problem(display, private.line, "PrivateKey is not a WireGuard key (44 characters of canonical base64)"))
    else:
        private_key, public_key = private.value, keys.public_key(private.value)

    addresses = []
    for directive in interface.every("Address"):
        for item in _items(directive.value):
            address = _interface(item)
            if address is None:
                found.append(_problem(display, directive.line, "Address holds something that is not an IP address with a prefix"))
            else:
                addresses.append((address, directive.line))
    if not addresses and interface.first("Address") is None:
        found.append(_problem(display, interface.line, "[Interface] has no Address: import needs each cluster's overlay address"))

    listen_port = _number(interface.first("ListenPort"), 1, 65535, display, found)
    mtu_directive = interface.first("MTU")
    mtu = _number(mtu_directive, 576, 65535, display, found)
    not_carried = tuple(d for d in interface.directives if d.key in NOT_CARRIED)

    peers: list[Peer] = []
    by_key: dict[str, int] = {}
    for section in (s for s in parsed if s.kind == "Peer"):
        peer = _peer(section, display, found)
        if peer is None:
            continue
        if peer.public_key in by_key:
            found.append(_problem(display, section.line, f"this [Peer] has the same PublicKey as the one at line {by_key[peer.public_key]}"))
            continue
        if public_key and peer.public_key == public_key:
            found.append(_problem(display, section.line, "this [Peer] has the interface's own public key"))
            continue
        by_key[peer.public_key] = section.line
        peers.append(peer)
    if found:
        return None, found
    return (
        WgQuickFile(
            display=display,
            private_key=private_key,
            public_key=public_key,
            private_key_line=private.line if private else interface.line,
            addresses=tuple(addresses),
            listen_port=listen_port,
            mtu=mtu,
            mtu_line=mtu_directive.line if mtu_directive else None,
            peers=tuple(peers),
            not_carried=not_carried,
            interface_line=interface.line,
        ),
        found,
    )


_NO_PRESHARED_KEY = "A" * 43 + "="


def _peer(section: Section, display: str, found: list[Diagnostic]) -> Peer | None:
    before = len(found)
    public = section.first("PublicKey")
    if public is None:
        found.append(_problem(display, section.line, "[Peer] has no PublicKey"))
    elif not keys.is_canonical(public.value):
        found.append(_problem(display, public.line, "PublicKey is not a WireGuard key (44 characters of canonical base64)"))
    preshared = section.first("PresharedKey")
    if preshared is not None and not keys.is_canonical(preshared.value):
        found.append(_problem(display, preshared.line, "PresharedKey is not a WireGuard key (44 characters of canonical base64)"))
    allowed = []
    for directive in section.every("AllowedIPs"):
        for item in _items(directive.value):
            network = _interface(item)
            if network is None:
                found.append(_problem(display, directive.line, "AllowedIPs holds something that is not an IP network"))
            else:
                allowed.append((network, directive.line))
    endpoint = section.first("Endpoint")
    if endpoint is not None:
        try:
            parse_endpoint(endpoint.value)
        except ValueError:
            found.append(_problem(display, endpoint.line, "Endpoint is not host:port with an IPv4 address, [IPv6] address or DNS name"))
    keepalive_directive = section.first("PersistentKeepalive")
    keepalive = 0
    if keepalive_directive is not None and keepalive_directive.value.lower() != "off":
        keepalive = _number(keepalive_directive, 0, 65535, display, found) or 0
    if len(found) != before or public is None:
        return None
    return Peer(
        public_key=public.value,
        line=section.line,
        allowed_ips=tuple(allowed),
        endpoint=(endpoint.value, endpoint.line) if endpoint is not None else None,
        keepalive=keepalive,
        keepalive_line=keepalive_directive.line if keepalive_directive else None,
        # All zeros is what wg itself means by no preshared key.
        preshared_key=preshared.value if preshared is not None and preshared.value != _NO_PRESHARED_KEY else None,
        comments=tuple(section.comments),
    )


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _interface(text: str):
    """An address with its prefix ('10.0.0.2/24' keeps its host bits); a bare address is a host."""
    if "%" in text or len(text) > 50:
        return None  # a zone index is free text, and means something on one machine only
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        return None


def _number(directive: Directive | None, least: int, most: int, display: str, found: list[Diagnostic]) -> int | None:
    if directive is None:
        return None
    value = directive.value
    # isdigit() alone holds for '²' too, which int() refuses.
    if value.isascii() and value.isdigit() and len(value) <= 6 and least <= int(value) <= most:
        return int(value)
    found.append(_problem(display, directive.line, f"{directive.key} is not a number from {least} to {most}"))
    return None
