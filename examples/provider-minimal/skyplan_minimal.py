"""The smallest skyplan provider: writes one JSON file per cluster that lists its peers."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict

from skyplan.sdk import (
    Diagnostic,
    Provider,
    ReadResponse,
    Reading,
    ResourceResult,
    ResourceStatusReport,
    StatusResponse,
    UnsafePathError,
    ValidateResponse,
    atomic,
)


class MinimalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    output_dir: str = "minimal"  # below the folder of links.yaml


class MinimalProvider(Provider):
    name = "minimal"
    settings_model = MinimalSettings

    def path(self, cluster: str):
        return self.paths.root / self.settings.output_dir / f"{cluster}.json"

    def document(self, cluster, world) -> dict:
        links = [v for v in world.values() if v.type == "link" and cluster.name in v.ends]
        peers = sorted({end for link in links for end in link.ends} - {cluster.name})
        return {"cluster": cluster.name, "endpoint": cluster.attributes["endpoint"], "peers": peers}

    def validate(self, request):
        return ValidateResponse()  # nothing beyond the core's rules

    def read(self, request):
        world = {view.address: view for view in request.resources}
        readings, diagnostics = {}, []
        for view in world.values():
            if view.type != "cluster":
                continue
            try:
                raw = atomic.read_bytes(self.path(view.name), self.paths.root)
                found = None if raw is None else json.loads(raw)
            except (OSError, ValueError, UnsafePathError) as exc:
                diagnostics.append(Diagnostic(f"{self.path(view.name)} cannot be read: {exc}"))
                continue
            expected = self.document(view, world)
            if found != expected:
                readings[view.address] = Reading(view.address, expected, found or {}, reason="file differs")
        return ReadResponse(readings, diagnostics)

    def apply(self, request):
        world = request.world
        for change in request.changes:
            view = change.after or change.before
            # A cluster's file, or the files of a link's two ends (they list their peers).
            names = [view.name] if view.type == "cluster" else [e for e in view.ends if f"cluster.{e}" in world]
            try:
                for name in names:
                    path = self.path(name)
                    if f"cluster.{name}" not in world:
                        atomic.remove(path, self.paths.root)
                        continue
                    text = json.dumps(self.document(world[f"cluster.{name}"], world), indent=2) + "\n"
                    atomic.ensure_dir(path.parent, 0o755, self.paths.root)
                    atomic.write_atomic(path, text.encode(), 0o644, self.paths.root)
            except (OSError, UnsafePathError) as exc:
                yield ResourceResult.failed(change.address, f"writing {path}: {exc}")
            else:
                yield ResourceResult(change.address, ok=True)

    def status(self, request):
        return StatusResponse({view.address: ResourceStatusReport("INIT", []) for view in request.resources})
