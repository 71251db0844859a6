"""State documents as bytes: encoding, and decoding with a clear error for every way it fails.

Shared by every store: the local file and the PostgreSQL row hold the same document.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from skyplan.errors import StateError
from skyplan.state.model import STATE_FORMAT_VERSION, State

_HEAD_VERSION = re.compile(rb'^\{\s*"version":\s*(\d+),')


def encode_state(state: State) -> bytes:
    # The bytes pydantic-core makes, as they are: model_dump_json decodes them into a str, which
    # was then encoded again (two more copies of a state that holds 47 MB for a large fleet).
    if not State.__pydantic_complete__:
        State.model_rebuild()  # defer_build: the first document encoded builds the serializer
    return State.__pydantic_serializer__.to_json(state, indent=2) + b"\n"


def parse_state(raw: bytes, where: str, what: str = "state file") -> State:
    """Decode a state document, with a clear error for every way it can be wrong.

    `what` names the container in messages: a state file here, a database row elsewhere."""
    head = _HEAD_VERSION.search(raw[:256])
    if head and int(head.group(1)) == STATE_FORMAT_VERSION:
        # The usual case, a state we wrote: one pass in pydantic-core, no Python-level JSON.
        try:
            return State.model_validate_json(raw)
        except ValidationError:
            pass  # fall through to the slow path, which explains exactly what is wrong
    if not raw.strip():
        raise StateError(f"state file {where} is empty; restore it from {where}.backup or remove it")
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        position = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise StateError(
            f"state file {where} is not valid JSON{position}: it may be truncated or corrupt. "
            f"It was left as it is; restore it from {where}.backup"
        ) from None
    if not isinstance(document, dict) or "lineage" not in document or "version" not in document:
        raise StateError(f"{where} is not a skyplan {what}")
    version = document.get("version")
    if not isinstance(version, int) or version > STATE_FORMAT_VERSION:
        raise StateError(
            f"{what} {where} has format version {version!r}, written by a newer skyplan; "
            f"this one reads version {STATE_FORMAT_VERSION}. Upgrade skyplan"
        )
    try:
        return State.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        place = ".".join(str(p) for p in first["loc"])
        raise StateError(f"{what} {where} is damaged: {place}: {first['msg']}") from None
