"""skyplan/imperative.py observe(): what it asks the provider, in which order, and what it reports,
the same as the plain loop it replaced (kept here as the reference)."""

from __future__ import annotations

from types import SimpleNamespace

from skyplan.imperative import observe
from skyplan.sdk import ResourceStatusReport, ResourceView, StatusResponse
from skyplan.state.model import ResourceState, ResourceStatus, State


def resource(kind: str, name: str, phase: str = "INIT", pending=None, **attributes) -> ResourceState:
    return ResourceState(
        type=kind,
        name=name,
        managed_by="skyctl",
        attributes=attributes or ({"subnets": []} if kind == "cluster" else {}),
        computed={"n": name},
        status=ResourceStatus(phase=phase, reason="why" if phase == "FAILED" else None, since="2026-01-01T00:00:00Z"),
        created="2026-01-01T00:00:00Z",
        pending=pending,
    )


class Recorder:
    """A provider that reports each resource it is asked about, and remembers the request."""

    def __init__(self):
        self.asked: list[list[ResourceView]] = []

    def status(self, request):
        self.asked.append(list(request.resources))
        return StatusResponse({v.address: ResourceStatusReport("ACTIVE", [{"seen": v.address}]) for v in request.resources})


def reference(ws, state, resources):
    """observe() as it was written before it was made faster."""
    from skyplan.imperative import _pending_message
    from skyplan.sdk import StatusRequest

    clusters = {r.name: r for r in state.resources if r.type == "cluster"} if state else {}
    views = {}
    for r in resources:
        if r.status.phase == "FAILED" or r.pending is not None:
            continue
        views[r.address] = ResourceView(r.type, r.name, r.attributes, r.computed)
        if r.type == "link":
            for end in r.ends:
                cluster = clusters.get(end)
                if cluster is not None and f"cluster.{end}" not in views:
                    views[f"cluster.{end}"] = ResourceView("cluster", end, cluster.attributes, cluster.computed)
    reports = ws.provider.status(StatusRequest(resources=list(views.values()))).statuses if views else {}
    result = {}
    for r in resources:
        if r.pending is not None:
            result[r.address] = ("PENDING", [{"type": "Applied", "status": "Unknown", "reason": "ApplyInterrupted", "message": _pending_message(r)}])
        elif r.status.phase == "FAILED":
            result[r.address] = ("FAILED", [{"type": "Applied", "status": "False", "reason": "ApplyFailed", "message": r.status.reason or ""}])
        else:
            report = reports.get(r.address)
            result[r.address] = (report.phase, report.conditions) if report else ("INIT", [])
    return result


def test_observe_asks_and_reports_what_the_plain_loop_did() -> None:
    clusters = [
        resource("cluster", "a"),
        resource("cluster", "b", phase="FAILED"),
        resource("cluster", "c", pending="create"),
        resource("cluster", "d"),
    ]
    links = [
        resource("link", "ab", source="a", target="b"),
        resource("link", "bc", source="b", target="c", pending="delete"),
        resource("link", "cd", source="c", target="d"),
        resource("link", "da", source="d", target="a", phase="FAILED"),
        resource("link", "ax", source="a", target="gone"),  # an end not in the state
        resource("link", "ad", source="a", target="d"),
    ]
    state = State(lineage="l", resources=clusters + links)
    for chosen in (links, clusters, clusters[::-1] + links, links + clusters, []):
        new, old = Recorder(), Recorder()
        assert observe(SimpleNamespace(provider=new), state, chosen) == reference(SimpleNamespace(provider=old), state, chosen)
        assert new.asked == old.asked, "the provider is asked about the same resources, in the same order"
