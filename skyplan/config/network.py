"""Parsing endpoints and networks strictly, so nothing odd can reach a generated file."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Used with fullmatch: a '$' would also match before a trailing newline, which would reach the file.
_DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
# Octets without leading zeros (which IPv4Address refuses) and a port from 1 up, in decimal.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4_ENDPOINT = re.compile(rf"({_OCTET}(?:\.{_OCTET}){{3}}):([1-9][0-9]{{0,4}})")

# ipaddress accepts "fe80::1%eth0"; the zone may hold any character, '#' and newlines included.
ZONE_REASON = "which only means something on one machine"
ENDPOINT_RULE = "host:port with an IPv4 address, [IPv6] address or DNS name, and a port from 1 to 65535"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """Raise ValueError with a reason if `text` is not a dialable host:port."""
    # Nearly every endpoint is an IPv4 address and a port, written as parsing would write them
    # back: taken as they are, without ipaddress, which a file of 10,000 clusters would call as often.
    found = _CANONICAL_IPV4_ENDPOINT.fullmatch(text) if type(text) is str else None
    if found is not None and int(found[2]) <= 65535:
        return Endpoint(found[1], int(found[2]))
    return _parse_endpoint(text)


def _parse_endpoint(text: str) -> Endpoint:
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"'{text}' is not {ENDPOINT_RULE}")
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"'{host}' in '{text}' is not an IPv6 address") from None
        if address.scope_id is not None:
            raise ValueError(f"'{host}' in '{text}' has a zone index ('%{address.scope_id}'), {ZONE_REASON}")
        return Endpoint(str(address), _port(port, text))
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"'{text}' is not {ENDPOINT_RULE}")
    if ":" in host:
        raise ValueError(f"'{text}': an IPv6 endpoint needs brackets, as in [{host}]:{port}")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return Endpoint(str(ipaddress.IPv4Address(host)), _port(port, text))
        except ipaddress.AddressValueError:
            raise ValueError(f"'{host}' in '{text}' is not an IPv4 address") from None
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"'{host}' in '{text}' is not a valid DNS name or IP address")
    return Endpoint(host, _port(port, text))


def _port(text: str, whole: str) -> int:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise ValueError(f"'{whole}' has no valid port (1 to 65535) after the last ':'")
    return int(text)


def parse_network(text: str) -> IPNetwork:
    """Raise ValueError with a reason, and a suggestion when only host bits are wrong."""
    # Loading a configuration reads each subnet three times (the rules, the provider's rules, the
    # desired resources): it is parsed once. Networks are immutable; errors are not remembered.
    return _parsed_network(text) if type(text) is str else _parse_network(text)


def _parse_network(text: str) -> IPNetwork:
    if "/" not in text:
        raise ValueError(f"'{text}' is not a network in CIDR form, such as 10.0.0.0/16")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"'{text}' is not a network in CIDR form: {exc}") from None
        raise ValueError(f"'{text}' has host bits set; did you mean {loose}?") from None
    zone = getattr(network.network_address, "scope_id", None)
    if zone is not None:
        raise ValueError(f"'{text}' has a zone index ('%{zone}'), {ZONE_REASON}")
    return network


_parsed_network = lru_cache(maxsize=1 << 16)(_parse_network)


def overlapping_pairs(networks: list[tuple[IPNetwork, object]]) -> list[tuple[tuple[IPNetwork, object], tuple[IPNetwork, object]]]:
    """Pairs of overlapping networks, by one sort and sweep instead of comparing all pairs.

    Each item carries a tag (who it belongs to) that comes back with it.
    """
    found = []
    for version in (4, 6):
        items = sorted(
            (n for n in networks if n[0].version == version),
            key=lambda item: (int(item[0].network_address), item[0].prefixlen),
        )
        widest: tuple[IPNetwork, object] | None = None  # the open network reaching furthest
        for item in items:
            start = int(item[0].network_address)
            if widest is not None and start <= int(widest[0].broadcast_address):
                found.append((widest, item))
            if widest is None or int(item[0].broadcast_address) > int(widest[0].broadcast_address):
                widest = item
    return found
