"""The one exception root; the CLIs map these to one clear line and exit code 1."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skyplan.config.diagnostics import Diagnostic


class SkyplanError(Exception):
    """An expected failure: bad input, a held lock, a failed apply. Never a traceback."""


class ConfigError(SkyplanError):
    """The configuration is invalid; carries every diagnostic found, not only the first."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        count = sum(1 for d in diagnostics if d.severity == "error")
        super().__init__(f"{count} error{'s' if count != 1 else ''} in the configuration")


class StateError(SkyplanError):
    """The state cannot be read or written safely (corrupt, foreign, newer, stale)."""


class LockError(StateError):
    """The state lock is held by someone else, or cannot be released."""


class PlanError(SkyplanError):
    """A plan cannot be made or a saved plan cannot be used."""


class FormatError(SkyplanError):
    """`skyplan fmt` cannot rewrite a file without changing its data or losing a comment."""


class ProviderError(SkyplanError):
    """A provider is missing, misconfigured, or failed outside of a single resource."""


class ApplyError(SkyplanError):
    """Some resources failed during apply; the state records what happened."""
