"""PostgreSQL URLs: checked as libpq reads them, and shown or stored without their password.

A URL is split here by libpq's own rules (its `conninfo_uri_parse_options`), not by urllib's:
the two disagree on an unencoded `@`, `/` or `#` in a password, and libpq then takes part of the
password for the host and prints it in "failed to resolve host". Such a URL is refused before
libpq sees it, with a message that quotes no part of the URL.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cache

SCHEMES = ("postgresql", "postgres")
_FORM = "postgresql://user:password@host:port/database"

# libpq keywords whose value is a secret; the password is also the URL's userinfo part.
SECRET_PARAMETERS = frozenset({"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"})

_HEX = frozenset("0123456789abcdefABCDEF")


class URLProblem(ValueError):
    """Why a URL cannot be used; the message quotes no part of the URL."""


@dataclass(frozen=True)
class _Split:
    """The raw pieces of a URL, cut where libpq cuts them."""

    scheme: str
    userinfo: str | None  # before the first '@' (None: no '@' before the first '/')
    hosts: str  # host[:port] list, commas between
    path: str | None  # the database name, after '/' and up to '?'
    query: str | None

    @property
    def user(self) -> str | None:
        return None if self.userinfo is None else self.userinfo.split(":", 1)[0]

    @property
    def password(self) -> str | None:
        if self.userinfo is None or ":" not in self.userinfo:
            return None
        return self.userinfo.split(":", 1)[1]


def _split(url: str) -> _Split:
    try:
        url.encode()
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 in the environment, or a "\udcff" escape in YAML.
        raise URLProblem("the URL is not valid UTF-8 text") from None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise URLProblem(f"expected a URL of the form {_FORM}")
    userinfo = None
    # libpq looks for the credentials' '@' only up to the first '/', and stops at the first '@'.
    for index, char in enumerate(rest):
        if char == "/":
            break
        if char == "@":
            userinfo, rest = rest[:index], rest[index + 1 :]
            break
    if "@" in rest.partition("?")[0]:
        # libpq would read the rest of the password as a host or database name, and print it.
        raise URLProblem(
            "the URL has an '@' that does not end the user name and password; in a user name, "
            "password or database name write '@' as %40 and '/' as %2F"
        )
    hosts, path, query = _split_hosts(rest)
    return _Split(scheme, userinfo, hosts, path, query)


def _split_hosts(rest: str) -> tuple[str, str | None, str | None]:
    """The host list (checked), then the database name and the query."""
    p, end = 0, len(rest)
    while True:
        if rest.startswith("[", p):
            close = rest.find("]", p)
            if close < 0:
                raise URLProblem("an IPv6 host has no closing ']' (write it as [::1]:5432)")
            address = rest[p + 1 : close]
            if not address:
                raise URLProblem("an IPv6 host between '[' and ']' is empty")
            try:
                ipaddress.IPv6Address(_decoded(address, "IPv6 host"))
            except ValueError:
                raise URLProblem("the host between '[' and ']' is not an IPv6 address") from None
            p = close + 1
            if p < end and rest[p] not in ":/?,":
                raise URLProblem("an IPv6 host's ']' must be followed by ':port', '/', '?' or ','")
        else:
            start = p
            while p < end and rest[p] not in ":/?,":
                p += 1
            host = rest[start:p]
            if "[" in host or "]" in host:
                raise URLProblem("'[' and ']' may only enclose an IPv6 host, as in [::1]:5432")
            _decoded(host, "host")
        if p < end and rest[p] == ":":
            start = p = p + 1
            while p < end and rest[p] not in "/?,":
                p += 1
            port = rest[start:p]
            if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
                raise URLProblem("a port is not a number from 1 to 65535")
        if p < end and rest[p] == ",":
            p += 1
            continue
        break
    hosts, tail = rest[:p], rest[p:]
    path = query = None
    if tail.startswith("/"):
        path, sep, query_text = tail[1:].partition("?")
        query = query_text if sep else None
    elif tail.startswith("?"):
        query = tail[1:]
    return hosts, path, query


def check_url(url: str) -> None:
    """Raise URLProblem unless libpq reads `url` as it is meant and can use every part of it."""
    parts = _split(url)
    if parts.userinfo is not None:
        _decoded(parts.user or "", "user name")
        _decoded(parts.password or "", "password")
    _decoded(parts.path or "", "database name")
    if parts.query is not None:
        known = _libpq_keywords()
        for item in parts.query.split("&"):
            if item.count("=") != 1:
                raise URLProblem(
                    "a query parameter is not of the form key=value; write '&' as %26 and '=' as %3D inside a value"
                )
            key, value = item.split("=")
            _decoded(value, "value of a query parameter")
            if _decoded(key, "name of a query parameter") not in known:
                # Not named: after an unencoded '&' in a password, the "name" is part of it.
                raise URLProblem("a query parameter is not a libpq connection parameter (or a value holds an unencoded '&')")


def display_url(url: str) -> str:
    """`url` without its password (in the user part or as a query parameter)."""
    try:
        check_url(url)
    except URLProblem:
        return "(a URL that is not valid)"
    parts = _split(url)
    user = f"{parts.user}@" if parts.user else ""
    path = "" if parts.path is None else f"/{parts.path}"
    kept = [item for item in (parts.query or "").split("&") if item and _param_name(item) not in SECRET_PARAMETERS]
    # Built by hand: a URL with no host (a local socket) keeps its "///".
    return f"{parts.scheme}://{user}{parts.hosts}{path}" + (f"?{'&'.join(kept)}" if kept else "")


def has_password(url: str) -> bool:
    return bool(url_secrets(url))


def url_secrets(url: str) -> list[str]:
    """Every secret that `url` may hold, raw and decoded, longest first.

    For a URL that is not valid, every reading of it counts: libpq's (the password ends at the
    first '@') and the one its author meant (the password ends at the last '@' before the host).
    """
    found: list[str] = []
    _, sep, rest = url.partition("://")
    if sep:
        head = rest.split("/", 1)[0]
        if "@" in head and ":" in head.rsplit("@", 1)[0]:
            meant = head.rsplit("@", 1)[0].split(":", 1)[1]
            found += [meant, meant.split("@", 1)[0]]
        elif "@" in rest.partition("?")[0] and ":" in rest.split("@", 1)[0]:
            found.append(rest.split("@", 1)[0].split(":", 1)[1])  # a '/' in the password
        items = rest.partition("?")[2].split("&")
        for index, item in enumerate(items):
            name, _, value = item.partition("=")
            if _quiet_decode(name) in SECRET_PARAMETERS:
                found.append(value)
                # After an unencoded '&', the value meant goes on up to the next real parameter.
                rest_of_value = []
                for following in items[index + 1 :]:
                    if _quiet_decode(following.partition("=")[0]) in _libpq_keywords():
                        break
                    rest_of_value.append(following)
                if rest_of_value:
                    found.append("&".join([value, *rest_of_value]))
    expanded = {s for raw in found for s in (raw, _quiet_decode(raw)) if s}
    return sorted(expanded, key=len, reverse=True)


def _param_name(item: str) -> str:
    return _quiet_decode(item.split("=", 1)[0])


def _decoded(text: str, what: str) -> str:
    """Percent-decoding as libpq does it, refusing what libpq (or psycopg) would choke on."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise URLProblem(f"the {what} has a '%' that is not followed by two hex digits (write '%' as %25)")
            if pair == "00":
                raise URLProblem(f"the {what} holds %00 (a NUL byte), which libpq refuses")
            out.append(int(pair, 16))
            i += 3
        else:
            out += text[i].encode("utf-8", "surrogatepass")  # a lone surrogate fails to decode below
            i += 1
    try:
        return out.decode()
    except UnicodeDecodeError:
        raise URLProblem(f"the {what} is not UTF-8 once percent-decoded") from None


def _quiet_decode(text: str) -> str:
    try:
        return _decoded(text, "")
    except URLProblem:
        return text


@cache
def _libpq_keywords() -> frozenset[str]:
    from psycopg import pq

    # "ssl=true" is a URI-only spelling of sslmode=require.
    return frozenset(o.keyword.decode() for o in pq.Conninfo.get_defaults()) | {"ssl"}
