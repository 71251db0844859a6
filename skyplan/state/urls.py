"""Database URLs as they may be shown or stored: never with their password."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit


def display_url(url: str) -> str:
    """`url` without its password (in the user part or as a query parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"], safe="/:,")
    # Built by hand: urlunsplit drops the "//" of a URL with no host (a local socket).
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def has_password(url: str) -> bool:
    return display_url(url) != url
