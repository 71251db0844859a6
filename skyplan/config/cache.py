"""A cache of validated configurations, keyed by the exact text and skyplan's version.

Parsing YAML is most of the cost of planning a large, unchanged file. Validation depends on the
text alone, so a configuration that validated once validates again: the cache keeps its
validated form in .skyplan/cache/ and skips parsing and rules while the text is unchanged.
Configurations with warnings are not cached, so the warnings are shown every time. A missing,
stale or damaged cache is simply ignored.

The key is a hash anyone can compute from the public text, so an entry is believed only if it
is sealed with this user's secret (skyplan/seal.py), which no repository holds: a cache file
that a pull request adds changes nothing skyplan decides.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from skyplan import __version__, atomic, seal

CACHE_FILE = "config.json"
# The same entry without clusters and links: all that skyctl needs, and quick to read.
SETTINGS_FILE = "settings.json"


def key_of(text_digest: str, display: str) -> str:
    """The entry's key: skyplan's version, the name shown in messages, and the text's digest."""
    digest = hashlib.sha256()
    for part in (__version__, display, text_digest):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def load(folder: Path, key: str, workspace: Path, name: str = CACHE_FILE) -> dict[str, Any] | None:
    try:
        # <workspace>/.skyplan/cache is reached from the workspace, no symlink followed.
        raw = atomic.read_bytes(folder / name, workspace)
        body = seal.unseal(name, raw, workspace) if raw is not None else None
        document = json.loads(body) if body is not None else None
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("key") != key:
        return None
    return document


def store(folder: Path, key: str, workspace: Path, config: Any, provider: dict[str, str], settings: Any) -> None:
    document = {
        "key": key,
        "provider": provider,  # entry point and distribution version (providers.provider_ref)
        "config": config.model_dump(mode="json"),
        "settings": settings.model_dump(mode="json"),
    }
    head = {k: document["config"][k] for k in ("version", "backend", "provider")}
    settings_only = {**document, "config": head}
    sealed = [
        (name, seal.seal(name, json.dumps(content, separators=(",", ":")).encode(), workspace))
        for name, content in ((CACHE_FILE, document), (SETTINGS_FILE, settings_only))
    ]
    if any(blob is None for _, blob in sealed):
        return  # without a secret to seal it with, an entry would never be believed
    try:
        atomic.ensure_dir(folder.parent, 0o700, workspace)  # .skyplan: never wider, whatever made it
        atomic.ensure_dir(folder, 0o700, workspace)
        # Commands store the cache under the state lock: a temporary file found here is one
        # that a killed run left behind.
        atomic.remove_leftovers(folder, within=workspace)
        for name, blob in sealed:
            atomic.write_atomic(folder / name, blob, 0o600, workspace)  # type: ignore[arg-type]
    except OSError:
        pass  # a cache that cannot be written only costs time


def revive(document: dict[str, Any], config_model: type, provider_cls: type) -> tuple[Any, Any] | None:
    """The cached config and provider settings, or None if they no longer validate."""
    try:
        return config_model.model_validate(document["config"]), provider_cls.settings_model.model_validate(document["settings"])
    except (ValidationError, KeyError, TypeError):
        return None
