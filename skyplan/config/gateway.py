"""Parsing a cluster's `gateway:` (ssh://[user@]host[:port] or an ssh config Host alias) strictly.

The result goes onto ssh's command line (providers/wireguard/ssh.py), and the text comes from
links.yaml or from a state others can write: anything that could become an ssh option, another
argument or an ssh token is refused rather than interpreted.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

GATEWAY_RULE = "ssh://[user@]host[:port] or a Host alias of the ssh config"

_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")
_ALIAS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_URL = re.compile(r"ssh://(?:(?P<user>[^@/]*)@)?(?P<host>\[[^\]/]*\]|[^:/\[\]@]*)(?::(?P<port>[^/]*))?")


@dataclass(frozen=True)
class GatewayAddress:
    """Where ssh connects: either a Host alias of the ssh config, or host with optional user/port."""

    host: str  # an alias, a hostname or an IP address (IPv6 without brackets)
    user: str | None = None
    port: int | None = None
    alias: bool = False


def parse_gateway(text: str) -> GatewayAddress:
    """`ssh://[user@]host[:port]` or a Host alias; ValueError saying why for anything else.

    Strict on purpose: the result goes onto ssh's command line, so a leading '-' (an option),
    whitespace or control characters (another argument or line), '%' (an ssh token) and
    anything URL-like beyond user, host and port are refused rather than interpreted.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("is empty")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError("contains whitespace or a control character")
    if "%" in text:
        raise ValueError("contains '%', which ssh would expand as a token")
    if text.startswith("-"):
        raise ValueError("starts with '-', which ssh would read as an option")
    if "://" not in text:
        if not _ALIAS.fullmatch(text) or text.endswith("."):
            raise ValueError("is neither ssh://[user@]host[:port] nor a Host alias (letters, digits, '.', '_', '-')")
        return GatewayAddress(host=text, alias=True)
    if not text.startswith("ssh://"):
        raise ValueError(f"has scheme {text.split('://', 1)[0]!r}; only ssh:// is supported")
    match = _URL.fullmatch(text)
    if not match:
        raise ValueError("is not ssh://[user@]host[:port] (no path, query or fragment)")
    user, host, port_text = match.group("user"), match.group("host"), match.group("port")
    if user is not None and not _USER.fullmatch(user):
        raise ValueError(f"has an invalid user name {user!r}")
    if host.startswith("["):
        inner = host[1:-1]
        if not inner or not _IPV6.fullmatch(inner) or ":" not in inner:
            raise ValueError(f"has an invalid IPv6 address {host!r}")
        try:
            host = str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise ValueError(f"has an invalid IPv6 address {host!r}") from None
    elif not host or not _HOSTNAME.fullmatch(host) or len(host) > 253:
        raise ValueError(f"has an invalid host {host!r}")
    port = None
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535 or port_text.startswith("0"):
            raise ValueError(f"has an invalid port {port_text!r} (1-65535)")
        port = int(port_text)
    return GatewayAddress(host=host, user=user, port=port)
