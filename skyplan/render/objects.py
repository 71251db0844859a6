"""skyctl's views: kubectl-like tables and SkyShift-shaped objects (kind, metadata, spec, status)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from skyplan.sdk import Display
from skyplan.state.model import ResourceState

LINK_COLUMNS = ("NAME", "SOURCE", "TARGET", "STATUS", "AGE")
NO_DISPLAY = Display()


def link_columns(display: Display = NO_DISPLAY) -> tuple[str, ...]:
    return ("NAME", "SOURCE", "TARGET", *(heading for heading, _ in display.columns), "STATUS", "AGE")


def cluster_columns(display: Display = NO_DISPLAY) -> tuple[str, ...]:
    """The cluster table's headings: the core's, with the provider's computed values in between."""
    return ("NAME", "ENDPOINT", "SUBNETS", *(heading for heading, _ in display.columns), "STATUS", "AGE")


@lru_cache(maxsize=4096)
def _moment(created: str) -> datetime | None:
    # Resources applied together share a timestamp: parse each one once.
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(created: str, now: datetime | None = None) -> str:
    """kubectl's coarse ages: 45s, 3m, 2h, 5d."""
    if now is None:
        return _age_now(created, int(time.time()))
    then = _moment(created)
    if then is None:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 120 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


@lru_cache(maxsize=4096)
def _age_now(created: str, second: int) -> str:
    # Resources applied together share a timestamp: within one second their age is the same.
    return age(created, datetime.fromtimestamp(second, timezone.utc))


def table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [columns, *rows]
    widths = [max(map(len, column)) for column in zip(*lines)]
    # One format for every row, applied with %: a table of 10,000 links is printed on every
    # `get`, and %-formatting a tuple is a third cheaper than str.format(*row).
    line = "".join(f"%-{width + 2}s" for width in widths[:-1]) + "%s"
    return "\n".join([(line % row).rstrip() for row in lines]) + "\n"


def link_row(link: ResourceState, phase: str, now: datetime | None = None, display: Display = NO_DISPLAY) -> tuple[str, ...]:
    if not display.columns:  # the usual case, on every row of a table of 10,000 links
        return (link.name, *link.ends, phase, age(link.created, now))
    computed = tuple(str(link.computed.get(key, display.missing)) for _, key in display.columns)
    return (link.name, *link.ends, *computed, phase, age(link.created, now))


def link_rows(links: list[ResourceState], phases: list[str], display: Display = NO_DISPLAY) -> list[tuple[str, ...]]:
    """link_row of each link, with its phase, now: the rows of a table of 10,000 links."""
    if display.columns:
        return [link_row(link, phase, display=display) for link, phase in zip(links, phases)]
    second = int(time.time())
    rows = []
    append = rows.append
    for link, phase in zip(links, phases):
        append((link.name, *link.ends, phase, _age_now(link.created, second)))
    return rows


def cluster_row(cluster: ResourceState, phase: str, now: datetime | None = None, display: Display = NO_DISPLAY) -> tuple[str, ...]:
    subnets = ",".join(cluster.attributes.get("subnets", [])) or "<none>"
    computed = tuple(str(cluster.computed.get(key, display.missing)) for _, key in display.columns)
    # No endpoint: behind NAT, it only dials out.
    endpoint = cluster.attributes.get("endpoint") or "<none>"
    return (cluster.name, endpoint, subnets, *computed, phase, age(cluster.created, now))


def link_object(link: ResourceState, phase: str, conditions: list[dict], display: Display = NO_DISPLAY) -> dict[str, Any]:
    source, target = link.ends
    status = _status(link, phase, conditions)
    status.update({k: link.computed[k] for k in display.status if k in link.computed})
    return {
        "kind": "Link",
        "metadata": _metadata(link),
        "spec": {"source_cluster": source, "target_cluster": target},
        "status": status,
    }


def cluster_object(cluster: ResourceState, phase: str, conditions: list[dict], display: Display = NO_DISPLAY) -> dict[str, Any]:
    attributes = cluster.attributes
    spec: dict[str, Any] = {"endpoint": attributes["endpoint"]} if "endpoint" in attributes else {}
    spec["subnets"] = list(attributes.get("subnets", []))
    # Arguments recorded only when set (a pinned address, an external peer's key), as a manifest
    # says them; a provider setting every cluster records is no argument of this one.
    spec.update({key: attributes[key] for key in _shown_when_set() if key in attributes})
    status = _status(cluster, phase, conditions)
    # In the order the state records them, as before: a provider's display names which.
    status.update({k: v for k, v in cluster.computed.items() if k in display.status})
    return {"kind": "Cluster", "metadata": _metadata(cluster), "spec": spec, "status": status}


def _metadata(resource: ResourceState) -> dict[str, Any]:
    return {
        "name": resource.name,
        "annotations": {"skyplan.io/managed-by": resource.managed_by, "skyplan.io/created": resource.created},
    }


def _status(resource: ResourceState, phase: str, conditions: list[dict]) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if resource.status.reason:
        status["reason"] = resource.status.reason
    elif phase == "FAILED":
        # Failed as seen live (no handshake for too long): the failing condition says why.
        failing = next((c for c in conditions if c.get("status") == "False" and c.get("message")), None)
        if failing is not None:
            status["reason"] = failing["message"]
    return status


def render_objects(objects: list[dict[str, Any]], output: str, kind: str, single: bool) -> str:
    if output == "json":
        document = objects[0] if single else {"kind": f"{kind}List", "items": objects}
        return json.dumps(document, indent=2) + "\n"
    from io import StringIO

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    stream = StringIO()
    # A stream of manifests: `skyctl get link -o yaml > links.yaml` is a file skyplan can plan.
    yaml.dump_all(objects, stream)
    return stream.getvalue()


@lru_cache(maxsize=1)
def _shown_when_set() -> tuple[str, ...]:
    from skyplan.config.manifests import ClusterManifestSpec  # here: `skyctl get` starts without it

    settings_or_shown = ("endpoint", "subnets", "gateway", "listen_port", "mtu", "persistent_keepalive")
    return tuple(name for name in ClusterManifestSpec.model_fields if name not in settings_or_shown)

