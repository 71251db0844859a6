"""A cache of validated configurations, keyed by the exact text and skyplan's version.

Parsing YAML is most of the cost of planning a large, unchanged file. Validation depends on the
text alone, so a configuration that validated once validates again: the cache keeps its
validated form in .skyplan/cache/ and skips parsing and rules while the text is unchanged.
Configurations with warnings are not cached, so the warnings are shown every time. A missing,
stale or damaged cache is simply ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from skyplan import __version__
from skyplan import atomic

CACHE_FILE = "config.json"
# The same entry without clusters and links: all that skyctl needs, and quick to read.
SETTINGS_FILE = "settings.json"


def key_of(text: str, display: str) -> str:
    digest = hashlib.sha256()
    for part in (__version__, display, text):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _workspace(folder: Path) -> Path:
    # The cache folder is <workspace>/.skyplan/cache: reached from the workspace, no link followed.
    return folder.parent.parent


def load(folder: Path, key: str, name: str = CACHE_FILE) -> dict[str, Any] | None:
    try:
        raw = atomic.read_bytes(folder / name, _workspace(folder))
        document = json.loads(raw) if raw is not None else None
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("key") != key:
        return None
    return document


def store(folder: Path, key: str, config: Any, provider: dict[str, str], settings: Any) -> None:
    document = {
        "key": key,
        "provider": provider,  # entry point and distribution version (providers.provider_ref)
        "config": config.model_dump(mode="json"),
        "settings": settings.model_dump(mode="json"),
    }
    head = {k: document["config"][k] for k in ("version", "backend", "provider")}
    settings_only = {**document, "config": head}
    try:
        atomic.ensure_dir(folder.parent, 0o700, _workspace(folder))  # .skyplan: never wider, whatever made it
        atomic.ensure_dir(folder, 0o700, _workspace(folder))
        # Commands store the cache under the state lock: a temporary file found here is one
        # that a killed run left behind.
        atomic.remove_leftovers(folder, within=_workspace(folder))
        atomic.write_atomic(folder / CACHE_FILE, json.dumps(document, separators=(",", ":")).encode(), 0o600, _workspace(folder))
        atomic.write_atomic(folder / SETTINGS_FILE, json.dumps(settings_only, separators=(",", ":")).encode(), 0o600, _workspace(folder))
    except OSError:
        pass  # a cache that cannot be written only costs time


def revive(document: dict[str, Any], config_model: type, provider_cls: type) -> tuple[Any, Any] | None:
    """The cached config and provider settings, or None if they no longer validate."""
    try:
        return config_model.model_validate(document["config"]), provider_cls.settings_model.model_validate(document["settings"])
    except (ValidationError, KeyError, TypeError):
        return None
