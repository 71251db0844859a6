"""Secrets taken out of text that is shown or saved: database passwords, keys, key-like values."""

from __future__ import annotations

import re

MASK = "***"

# A piece of a secret this long is already too much to show (and shorter ones match too often).
_SHORTEST_PIECE = 4
# Shorter secrets would mask every "a" or "pw" in a message; a secret longer than this is
# masked whole only (its pieces would be too many to look for).
_SHORTEST_SECRET = 3
_LONGEST_PIECES = 256

# Secrets met during this run (a backend URL's password), for the crash report: an exception's
# text may quote them in any shape.
_remembered: set[str] = set()

_URL_PASSWORD = re.compile(
    # The password ends at the last '@' of the word, which is where its author meant it to end,
    # whatever libpq or urllib make of an unencoded '@' or '/' in it.
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)[^\s'\"]*@"
)
_SECRET_WORD = r"(?:pass(?:word|wd)?|pwd|secret|token|api_?key|private_?key|client_key|server_key)"
_SECRET_ASSIGNMENT = re.compile(
    rf"(?i)(?P<head>\b[a-z_]*{_SECRET_WORD}\s*[=:]\s*)(?:(?P<quote>['\"])(?:\\.|(?!(?P=quote)).)*(?P=quote)?|[^\s&'\",;]+)"
)
_KEY = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[A-Za-z0-9+/]=(?![A-Za-z0-9+/=])")
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)
_SECRET_OPTION = re.compile(r"(?i)^--?[a-z0-9_-]*(?:pass|pwd|secret|token|key)[a-z0-9_-]*$")
_VARIABLE_OPTIONS = ("--var",)  # template variables: KEY=VALUE, and a value may be anything


def remember(*secrets: str) -> None:
    _remembered.update(s for s in secrets if s)


def mask(text: str, secrets: list[str] | set[str] | tuple[str, ...]) -> str:
    """`text` with each secret, and every piece of one at least four characters long, masked."""
    secrets = [s for s in secrets if len(s) >= _SHORTEST_SECRET]
    if not secrets or not text:
        return text
    pieces: set[str] = set()
    for secret in secrets:
        pieces.add(secret)
        if len(secret) <= _LONGEST_PIECES:
            for length in range(_SHORTEST_PIECE, len(secret)):
                pieces.update(secret[i : i + length] for i in range(len(secret) - length + 1))
    lengths = sorted({len(p) for p in pieces}, reverse=True)
    out: list[str] = []
    i = 0
    while i < len(text):
        for length in lengths:
            if text[i : i + length] in pieces:
                out.append(MASK)
                i += length
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` without anything that looks like a secret, and without the secrets given or met."""
    text = _PEM.sub("<private key>", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m['head']}{m['quote'] or ''}{MASK}{m['quote'] or ''}", text)
    text = _KEY.sub("<key>", text)
    return mask(text, {*secrets, *_remembered})


def redact_argv(argv: list[str]) -> list[str]:
    """A command line as it may be saved: secret options' values and template variables masked."""
    shown: list[str] = []
    after: str | None = None
    for arg in argv:
        if after is not None:
            shown.append(_masked_value(after, arg))
            after = None
            continue
        name, eq, value = arg.partition("=")
        if arg.startswith("-") and eq and (_SECRET_OPTION.match(name) or name in _VARIABLE_OPTIONS):
            shown.append(f"{name}={_masked_value(name, value)}")
            continue
        if _SECRET_OPTION.match(arg) or arg in _VARIABLE_OPTIONS:
            after = arg
        shown.append(redact(arg))
    return shown


def redact_environment(environ: dict[str, str], prefixes: tuple[str, ...]) -> list[str]:
    """NAME=value for the variables with these prefixes; a secret-named variable's value masked."""
    lines = []
    for name in sorted(n for n in environ if n.startswith(prefixes)):
        value = environ[name]
        if re.search(r"(?i)pass|secret|token|key", name):
            value = MASK
        lines.append(f"{name}={redact(value)}")
    return lines


def _masked_value(option: str, value: str) -> str:
    if option in _VARIABLE_OPTIONS and "=" in value:
        return f"{value.split('=', 1)[0]}={MASK}"
    return MASK
