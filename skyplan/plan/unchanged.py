"""The sealed record of the last `skyplan plan` that found nothing to do, so that the same plan
of the same inputs is not worked out again.

A plan is a pure function of the configuration's text, the state (byte for byte, with the code
that reads both, the provider's settings and the workspace: the key state/checked.py makes of
them) and what the refresh found. When the refresh of this run found nothing (no drift, no
warning) and a plan of exactly that text and state found no changes before, it finds none now:
the desired resources are not built, the planner and the provider's planned values not asked.
Only for a whole normal plan shown as text: --target, --exclude, --replace, -out and -json
always plan in full, and so does every `apply`.

Sealed like every record (skyplan/records.py): a record planted by a pull request, copied from
another workspace, or kept from another text or state is not believed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from skyplan import records

RECORD = "no-changes.json"
_PURPOSE = "no-changes"


class NoChangesRecord:
    def __init__(self, folder: Path, verdict_key: str, config_digest: str, workspace: Path) -> None:
        digest = hashlib.sha256(b"no-changes\0")
        for part in (verdict_key, config_digest):
            digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
        self._key = digest.hexdigest().encode("ascii")
        self._folder = folder
        self._workspace = workspace

    def holds(self) -> bool:
        """Whether a plan of these inputs found no changes before."""
        return records.recall(self._folder, RECORD, _PURPOSE, self._workspace) == self._key

    def keep(self) -> None:
        """Record that a plan of these inputs found no changes (once: an unchanged record stays)."""
        if not self.holds():
            records.keep(self._folder, RECORD, _PURPOSE, self._key, self._workspace)
