"""A sealed record of the last state that passed every read-back check, so that an unchanged
state is not checked again by the next command.

The shape and hostile-state checks (state/model.py check_shapes, state/checks.py) hold every
recorded resource to the configuration's rules: on 10,000 links they are a third of a
`skyctl get`. Their verdict depends only on the state's bytes, the code that judges them
(skyplan's and the provider's), the provider's settings and the workspace folder, so a state
that passed once passes again while all of those are unchanged.

The record holds one digest of all of them, sealed with this user's secret (skyplan/seal.py):
a state changed by anyone, however it was changed (a shared database row, a pull request, a
hand edit), has another digest and is checked in full, exactly as without the record; and a
record planted in the workspace, or copied from another, is not believed. A missing, damaged
or unwritable record only costs the time of the checks.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from skyplan import __version__, records

RECORD = "state-checked.json"
_PURPOSE = "state-checked"


def verdict_key(state_digest: str, provider, root: Path) -> str:
    """What the checks' verdict on a state depends on, as one digest."""
    digest = hashlib.sha256()
    cls = type(provider)
    import pydantic
    import pydantic_core

    parts = [
        __version__,
        sys.version,  # the interpreter's and the validators' libraries' rules judge too
        pydantic.VERSION,
        pydantic_core.__version__,
        state_digest,
        str(root),
        f"{cls.__module__}.{cls.__qualname__}",
        str(cls.schema_version),
        provider.settings.model_dump_json(),
        *_code_identity(cls.__module__),
        _library_identity("jinja2"),  # hook templates are checked by parsing them
    ]
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def _code_identity(provider_module: str) -> list[str]:
    """Every source file of skyplan, and of the folder of the provider's module, with its size
    and modification time: code that judges differently (an upgrade, an edit) makes another
    key. The same for every command, whichever modules it happened to load."""
    import skyplan

    files: list[str] = []
    for folder, subfolders, names in os.walk(Path(skyplan.__file__).parent):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        files += (os.path.join(folder, name) for name in sorted(names) if name.endswith(".py"))
    module = sys.modules.get(provider_module)
    if module is not None and getattr(module, "__file__", None):
        # The provider's module and its siblings (its models, its validators), not further.
        folder = os.path.dirname(module.__file__)
        try:
            files += sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".py"))
        except OSError:
            # A provider that cannot be listed (imported from a zip): no record can vouch for
            # what its code judged, so the key matches no other run's.
            return [os.urandom(16).hex()]
    found = []
    for path in files:
        try:
            info = os.stat(path)
        except OSError:
            found.append(f"{path}:?")
            continue
        found.append(f"{path}:{info.st_size}:{info.st_mtime_ns}")
    return found


def _library_identity(name: str) -> str:
    """A library that judges too, without importing it (jinja2 costs a command 20 ms): the file
    that makes its package, with its size and time, which an upgrade changes."""
    from importlib.util import find_spec

    try:
        spec = find_spec(name)
        origin = spec.origin if spec is not None else None
        info = os.stat(origin) if origin else None
    except (ImportError, ValueError, OSError):
        return f"{name}:?"
    return f"{name}:{origin}:{info.st_size}:{info.st_mtime_ns}" if info is not None else f"{name}:-"


def passed(folder: Path, key: str, workspace: Path) -> bool:
    """Whether the sealed record in `folder` says the state of `key` passed every check."""
    body = records.recall(folder, RECORD, _PURPOSE, workspace)
    return body is not None and body == key.encode("ascii")


def record(folder: Path, key: str, workspace: Path) -> None:
    """Record that the state of `key` passed every check; nothing if it cannot be sealed or written."""
    records.keep(folder, RECORD, _PURPOSE, key.encode("ascii"), workspace)


tidy = records.tidy
