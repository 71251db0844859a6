"""The one exception root; the CLIs map these to one clear line and exit code 1."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skyplan.config.diagnostics import Diagnostic


class SkyplanError(Exception):
    """An expected failure: bad input, a held lock, a failed apply. Never a traceback.

    It carries its problems as diagnostics: one made of the message, or every one found when
    they are given (`diagnostics=`), so that a user with five mistakes sees five lines.
    """

    def __init__(self, message: str = "", *, diagnostics: Sequence[Diagnostic] = ()):
        self._diagnostics = list(diagnostics)
        if not message and self._diagnostics:
            first = self._diagnostics[0].message
            more = len(self._diagnostics) - 1
            message = first + (f" (and {more} more problem{'s' if more != 1 else ''})" if more else "")
        super().__init__(message)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """Every problem, in the order found; render/errors.py prints each on its own line."""
        if self._diagnostics:
            return self._diagnostics
        from skyplan.config.diagnostics import Diagnostic

        return [Diagnostic(str(self))]


class OutputError(SkyplanError):
    """Standard output cannot be written: closed (`>&-`), or its disk full. Said on stderr."""


class ConfigError(SkyplanError):
    """The configuration is invalid; carries every diagnostic found, not only the first."""

    def __init__(self, diagnostics: list[Diagnostic]):
        count = sum(1 for d in diagnostics if d.severity == "error")
        super().__init__(f"{count} error{'s' if count != 1 else ''} in the configuration", diagnostics=diagnostics)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self._diagnostics  # empty only if nothing was found, which no caller raises


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


class ConfigImportError(SkyplanError):
    """Existing configuration files cannot be imported (`skyplan import`); nothing was written."""


class ApplyError(SkyplanError):
    """Some resources failed during apply; the state records what happened."""


class UnsafePathError(SkyplanError):
    """A path skyplan would read, write or delete is a symlink, or lies outside the folder it
    must stay in: it is never followed."""

    def __init__(self, path: Path | str, outside: Path | str | None = None):
        self.path = Path(path)
        if outside is not None:
            message = f"{_shown(self.path)} is outside {_shown(Path(outside))}, where skyplan keeps its files"
        else:
            message = (
                f"{_shown(self.path)} is a symlink; skyplan never reads, writes or deletes through a "
                "symlink in the workspace: replace it with a real file or folder"
            )
        super().__init__(message)


def _shown(path: Path) -> str:
    # As the user would type it in the folder they ran skyplan from; absolute elsewhere.
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)
