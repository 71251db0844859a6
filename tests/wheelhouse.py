"""Wheels of the distributions installed here, so that pip can install skyplan with no index.

Tools that install skyplan themselves (pre-commit makes a virtualenv and runs `pip install .`
of the hook repository) need its dependencies as wheels. Tests run offline, so the wheels are
packed from what this interpreter has installed: each distribution's files as its RECORD lists
them, under the platform tag its WHEEL file recorded.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Written by the installer, not part of what a wheel carries.
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def requirement_closure(root: str) -> list[str]:
    """`root`'s distribution and everything it needs (extras that it asks for included), sorted."""
    extras_of: dict[str, frozenset[str]] = {}
    todo = [(root, frozenset[str]())]
    while todo:
        name, extras = todo.pop()
        dist = metadata.distribution(name)
        key = canonicalize_name(dist.metadata["Name"])
        if key in extras_of and extras <= extras_of[key]:
            continue
        extras_of[key] = extras_of.get(key, frozenset()) | extras
        environments = [{"extra": extra} for extra in extras_of[key] or {""}]
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return sorted(extras_of)


def pack_wheel(name: str, into: Path) -> Path:
    """A wheel of installed distribution `name`, written into folder `into`."""
    dist = metadata.distribution(name)
    wheel_info = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_info.splitlines() if line.startswith("Tag:")]
    tag = tags[0] if tags else "py3-none-any"
    project = dist.metadata["Name"].replace("-", "_").replace(".", "_")
    path = into / f"{project}-{dist.version}-{tag}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    dist_info = None
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as wheel:
        for file in dist.files or []:
            parts = Path(file).parts
            if ".." in parts or "__pycache__" in parts:
                continue  # scripts (pip writes them again) and bytecode (it compiles again)
            if parts[0].endswith(".dist-info"):
                dist_info = parts[0]
                if parts[-1] in _INSTALLER_FILES:
                    continue
            data = Path(dist.locate_file(file)).read_bytes()
            wheel.writestr(str(file), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            writer.writerow([str(file), f"sha256={digest}", len(data)])
        assert dist_info is not None, f"{name} has no .dist-info in its RECORD"
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        wheel.writestr(f"{dist_info}/RECORD", record.getvalue())
    return path


def wheelhouse(root: str, into: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """A folder of wheels for `root`'s dependencies (not `root` itself, nor `skip`)."""
    into.mkdir(parents=True, exist_ok=True)
    for name in requirement_closure(root):
        if name != canonicalize_name(root) and name not in skip:
            pack_wheel(name, into)
    return into
