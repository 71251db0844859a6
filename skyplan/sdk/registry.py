"""The entry-point registry: providers are found by name in the `skyplan.providers` group."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from skyplan.errors import ProviderError
from skyplan.sdk.provider import Provider

ENTRY_POINT_GROUP = "skyplan.providers"

# The provider a configuration without a `provider.name` uses: one constant, read by the
# configuration model, its JSON schema and `skyplan fmt`.
DEFAULT_PROVIDER = "wireguard"


@lru_cache(maxsize=1)
def installed_providers() -> dict[str, Any]:
    # Scanning every installed distribution's metadata is slow; the answer cannot change
    # while the process runs.
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def provider_class(name: str) -> type[Provider]:
    available = installed_providers()
    if name not in available:
        known = ", ".join(sorted(available)) or "none"
        raise ProviderError(f"unknown provider '{name}'; installed providers: {known}")
    try:
        cls = available[name].load()
    except Exception as exc:  # a broken plugin must not take the CLI down with a traceback
        raise ProviderError(f"provider '{name}' failed to load: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ProviderError(f"provider '{name}' does not implement skyplan.sdk.Provider")
    return cls


def provider_ref(name: str) -> dict[str, str]:
    """Where provider `name` comes from: its entry point and its distribution's version."""
    from skyplan import __version__

    entry_point = installed_providers()[name]
    dist = getattr(entry_point, "dist", None)
    dist_name = getattr(dist, "name", "")
    return {
        "name": name,
        "value": entry_point.value,
        "dist": dist_name,
        # skyplan's own providers are matched with the version this process runs (see below),
        # which an editable install's metadata may lag behind.
        "version": __version__ if dist_name == "skyplan" else getattr(dist, "version", ""),
    }


def provider_class_from_ref(ref: dict[str, str]) -> type[Provider] | None:
    """The class `ref` names, if that distribution is still installed at that version.

    Reading one distribution's version is far cheaper than scanning every entry point, which
    is what lets a cached configuration start a command quickly.
    """
    from importlib import import_module

    from skyplan import __version__

    try:
        dist = ref.get("dist")
        if not dist:
            return None
        if dist == "skyplan":
            # The built-in providers ship with skyplan itself, whose version this process knows
            # without importlib.metadata (an import and a scan of sys.path: 20 ms of each command).
            if ref.get("version") != __version__:
                return None
        else:
            from importlib.metadata import version

            if version(dist) != ref.get("version"):
                return None
        module, _, attribute = ref["value"].partition(":")
        cls = import_module(module)
        for part in attribute.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError, KeyError, ValueError):  # PackageNotFoundError is an ImportError
        return None
    return cls if isinstance(cls, type) and issubclass(cls, Provider) and cls.name == ref.get("name") else None
