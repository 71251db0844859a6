"""skyctl's verbs as one-resource plans, run through the same planner, engine, lock and state.

Checks come first and use SkyShift's wording, so SkyShift users (and its CLI tests) see the
messages they know. Nothing is written unless every check passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING

from skyplan.errors import SkyplanError

if TYPE_CHECKING:
    # Imported where used: `skyctl get` reaches observe() and must start without the planner,
    # the engine and the configuration's models (STYLE.md: `skyctl get link` starts fast).
    from skyplan.apply import ApplyOutcome
    from skyplan.config.models import ClusterSpec, Config, LinkSpec
    from skyplan.plan.model import DesiredResource, Plan
    from skyplan.state.model import ResourceState, State
    from skyplan.workspace import Workspace


@dataclass
class Done:
    """A finished one-resource change, and anything worth telling the user about it."""

    plan: Plan
    outcome: ApplyOutcome
    notes: list[str]


def create_link(ws: Workspace, name: str, source: str, target: str, lock_timeout: float) -> Done:
    from skyplan.config.models import LinkSpec
    from skyplan.plan.desired import link_attributes
    from skyplan.plan.model import DesiredResource

    _check_name("Link", name)
    if source == target:
        raise SkyplanError("Source and target clusters cannot be the same.")
    if _nothing_recorded(ws):
        raise SkyplanError(f"Source cluster '{source}' not found.")
    with ws.locked("skyctl create link", lock_timeout) as lock:
        prior = ws.read_state()
        recorded = prior.by_address() if prior else {}
        for role, cluster in (("Source", source), ("Target", target)):
            end = recorded.get(f"cluster.{cluster}")
            if end is None:
                raise SkyplanError(f"{role} cluster '{cluster}' not found.")
            if end.pending == "delete":
                raise SkyplanError(
                    f"{role} cluster '{cluster}' is being deleted: an interrupted delete of it did not finish; "
                    f"run skyctl delete cluster {cluster} to finish it."
                )
        spec = LinkSpec(name=name, source=source, target=target)
        # The provider's link defaults apply as in the file (a preshared key when preshared_keys is on).
        attributes = link_attributes(spec, type(ws.provider), ws.provider.settings)
        computed = type(ws.provider).computed_attributes
        _refuse_existing(recorded.get(f"link.{name}"), attributes, f"skyctl delete link {name}", computed)
        _check_topology(ws, prior, spec)
        notes = [
            f"Clusters '{source}' and '{target}' are already linked by '{other.name}'; "
            f"link '{name}' shares that peering, which lasts while either link exists."
            for other in _links_between(recorded, source, target, besides=name)[:1]
        ]
        desired = {f"link.{name}": DesiredResource(type="link", name=name, attributes=attributes, managed_by="skyctl")}
        # An end that an interrupted create left half-made is finished first, in the same apply:
        # the link needs its key and address.
        desired.update(_unfinished_creates(recorded, [f"cluster.{source}", f"cluster.{target}"], computed))
        return _run(ws, prior, desired, set(desired), lock, notes)


def delete_link(ws: Workspace, name: str, lock_timeout: float) -> Done:
    if _nothing_recorded(ws):
        raise SkyplanError(f"Link '{name}' does not exist.")
    with ws.locked("skyctl delete link", lock_timeout) as lock:
        prior = ws.read_state()
        have = (prior.by_address() if prior else {}).get(f"link.{name}")
        if have is None:
            raise SkyplanError(f"Link '{name}' does not exist.")
        _refuse_file_managed(ws, have, "Link")
        return _run(ws, prior, {}, {have.address}, lock, [])


def create_cluster(
    ws: Workspace,
    name: str,
    endpoint: str | None,
    subnets: list[str],
    listen_port: int | None,
    lock_timeout: float,
    *,
    gateway: str | None = None,
    **arguments,
) -> Done:
    from skyplan.config.models import ClusterSpec
    from skyplan.plan.desired import cluster_attributes
    from skyplan.plan.model import DesiredResource

    _check_name("Cluster", name)
    spec = ClusterSpec(name=name, endpoint=endpoint, subnets=list(subnets), listen_port=listen_port, gateway=gateway, **arguments)
    with ws.locked("skyctl create cluster", lock_timeout) as lock:
        prior = ws.read_state()
        assert ws.loaded is not None
        attributes = cluster_attributes(spec, type(ws.provider), ws.loaded.settings)
        recorded = (prior.by_address() if prior else {}).get(f"cluster.{name}")
        _refuse_existing(recorded, attributes, f"skyctl delete cluster {name}", type(ws.provider).computed_attributes)
        _check_topology(ws, prior, spec)
        desired = {f"cluster.{name}": DesiredResource(type="cluster", name=name, attributes=attributes, managed_by="skyctl")}
        return _run(ws, prior, desired, set(desired), lock, [])


def delete_cluster(ws: Workspace, name: str, lock_timeout: float) -> Done:
    if _nothing_recorded(ws):
        raise SkyplanError(f"Cluster '{name}' does not exist.")
    with ws.locked("skyctl delete cluster", lock_timeout) as lock:
        prior = ws.read_state()
        recorded = prior.by_address() if prior else {}
        have = recorded.get(f"cluster.{name}")
        if have is None:
            raise SkyplanError(f"Cluster '{name}' does not exist.")
        _refuse_file_managed(ws, have, "Cluster")
        joining = [r for r in recorded.values() if r.type == "link" and name in r.ends]
        users = sorted(r.name for r in joining if r.pending != "delete")
        if users:
            raise SkyplanError(f"Cluster '{name}' is still linked by {', '.join(users)}; delete those links first.")
        # Links whose interrupted delete did not finish go first, in the same apply.
        return _run(ws, prior, {}, {have.address, *(r.address for r in joining)}, lock, [])


def _run(ws: Workspace, prior: State | None, desired: dict, scope: set[str], lock, notes: list[str]) -> Done:
    from skyplan.apply import apply_plan
    from skyplan.planning import make_plan

    plan = make_plan(ws, prior, desired=desired, owner="skyctl", scope=scope, do_refresh=False)
    ws.remember_config()
    outcome = apply_plan(plan, prior, ws.store, ws.provider, lock=lock)
    return Done(plan, outcome, notes)


def _nothing_recorded(ws: Workspace) -> bool:
    """A local workspace with no state folder yet: refusing now, before the lock creates the
    folder, leaves nothing behind."""
    return ws.backend is not None and ws.backend.type == "local" and not ws.paths.data.exists()


def _check_name(kind: str, name: str) -> None:
    from skyplan.config.models import NAME_RULE
    from skyplan.config.rules import name_problem

    if name_problem(name):
        raise SkyplanError(f"{kind} name '{name}' is invalid: {NAME_RULE}.")


def _refuse_file_managed(ws: Workspace, have: ResourceState, kind: str) -> None:
    if have.managed_by == "file":
        where = ws.loaded.display if ws.loaded and ws.loaded.display else "the configuration file"
        raise SkyplanError(
            f"{kind} '{have.name}' is managed by {where}; remove it from that file and run skyplan apply."
        )


def _refuse_existing(have: ResourceState | None, attributes: dict, undo: str, computed: Mapping[str, tuple[str, ...]]) -> None:
    """A create may go on only where nothing is recorded, or where it finishes itself: skyctl's
    own create of the same resource, which an interrupted run left pending or which failed
    before the resource was made."""
    if have is None:
        return
    kind = have.type.capitalize()
    unfinished = have.pending in ("create", "delete") or (have.pending is None and _unmade(have, computed))
    if have.managed_by != "skyctl" or not unfinished:
        raise SkyplanError(f"{kind} '{have.name}' already exists.")
    if have.pending == "delete":
        raise SkyplanError(
            f"{kind} '{have.name}' is being deleted: an interrupted delete of it did not finish; "
            f"run {undo} to finish it, then create it again."
        )
    differs = [key for key in attributes if attributes[key] != have.attributes.get(key)]
    if differs:
        key = differs[0]
        raise SkyplanError(
            f"{kind} '{have.name}' already exists, unfinished: {'an interrupted' if have.pending else 'a failed'} create of it with {key} "
            f"{_shown(have.attributes.get(key))} (not {_shown(attributes[key])}) did not finish; repeat "
            f"that create to finish it, or run {undo}."
        )


def _shown(value) -> str:
    return (",".join(value) or "<none>") if isinstance(value, list) else str(value)


def _unfinished_creates(
    recorded: dict[str, ResourceState], addresses: list[str], computed: Mapping[str, tuple[str, ...]]
) -> dict[str, DesiredResource]:
    """The resources among `addresses` that an interrupted create left pending, or whose create
    failed before they were made, as they were asked for."""
    from skyplan.plan.planner import as_recorded

    return {
        a: as_recorded(recorded[a])
        for a in addresses
        if a in recorded and (recorded[a].pending == "create" or (recorded[a].pending is None and _unmade(recorded[a], computed)))
    }


def _unmade(have: ResourceState, computed: Mapping[str, tuple[str, ...]]) -> bool:
    """Its create failed before the provider computed what the resource needs (a cluster's key):
    as for the planner, only a create can finish it, so repeating the create is how it is finished."""
    return have.status.phase == "FAILED" and not set(computed.get(have.type, ())) <= set(have.computed)


def _links_between(recorded: dict[str, ResourceState], a: str, b: str, besides: str) -> list[ResourceState]:
    pair = {a, b}
    return [
        r
        for r in recorded.values()
        if r.type == "link" and r.name != besides and r.pending != "delete" and set(r.ends) == pair
    ]


def _check_topology(ws: Workspace, prior: State | None, new: ClusterSpec | LinkSpec) -> None:
    """The file's rules (endpoints, networks, overlaps, pool) applied to `new` where it lands."""
    from skyplan.config import rules
    from skyplan.config.models import ClusterSpec

    clusters, links = _specs(prior, new, type(ws.provider), ws.provider.settings)
    if isinstance(new, ClusterSpec):
        clusters.append(new)
    else:
        links.append(new)
    from skyplan.config.diagnostics import Diagnostic

    transit = {
        r.name: r.attributes["transit_hub"]
        for r in (prior.resources if prior else [])
        if r.type == "link" and "transit_hub" in r.attributes
    }
    # The configuration built here is skyctl's, not the user's: its places ("links[3]") would
    # mean nothing to them, so each problem is told without one.
    found = rules.check(_config(clusters, links, transit), ws.provider)
    problems = sorted({d.detail for d in found if d.severity == "error"})
    if problems:
        raise SkyplanError(diagnostics=[Diagnostic(problem) for problem in problems])


def _specs(
    prior: State | None, new: ClusterSpec | LinkSpec, provider_cls: type, settings
) -> tuple[list[ClusterSpec], list[LinkSpec]]:
    """What the rules need to judge `new`: a new cluster has no links yet; a new link changes
    only what its two ends reach, so its ends, their links and their peers are enough."""
    from skyplan.config.models import LinkSpec

    kind = "link" if isinstance(new, LinkSpec) else "cluster"
    # A create that finishes an interrupted one is judged in place of it, not next to it.
    resources = [r for r in (prior.resources if prior else []) if not (r.type == kind and r.name == new.name)]
    if isinstance(new, LinkSpec):
        ends = {new.source, new.target}
        near = [r for r in resources if r.type == "link" and not ends.isdisjoint(r.ends)]
        # An end that is a spoke of a transit hub also reaches the hub's other spokes.
        hubs = {r.attributes["transit_hub"] for r in near if "transit_hub" in r.attributes}
        if hubs:
            seen = {r.name for r in near}
            near += [r for r in resources if r.type == "link" and r.name not in seen and r.attributes.get("transit_hub") in hubs]
        names = ends | {e for r in near for e in r.ends}
        resources = near + [r for r in resources if r.type == "cluster" and r.name in names]
    else:
        resources = [r for r in resources if r.type == "cluster"]
    clusters, links = [], []
    for r in resources:
        if r.type == "cluster":
            clusters.append(_recorded_cluster(r, provider_cls, settings))
        else:
            links.append(LinkSpec.model_construct(name=r.name, **r.ends._asdict(), preshared_key=r.attributes.get("preshared_key")))
    return clusters, links


def _recorded_cluster(r: ResourceState, provider_cls: type, settings) -> ClusterSpec:
    """A recorded cluster as the entry that would record it, for the file's rules."""
    from skyplan.config.models import ClusterSpec
    from skyplan.plan.desired import recorded_when_set

    attributes = r.attributes
    arguments = {key: attributes.get(key) for key in recorded_when_set(provider_cls)}
    # An override is told from the provider's setting only by its value: one that equals the
    # setting judges the same either way.
    for field, setting in provider_cls.cluster_overrides.items():
        value = attributes.get(setting)
        arguments[field] = value if value is not None and value != getattr(settings, setting, None) else None
    return ClusterSpec.model_construct(name=r.name, subnets=attributes["subnets"], **arguments)


def _config(clusters: list[ClusterSpec], links: list[LinkSpec], transit: dict[str, str] | None = None) -> Config:
    """`transit`: link name -> the transit hub it records; those links become their meshes again."""
    from skyplan.config.models import Config, MeshSpec

    groups: dict[tuple[str, str], list[str]] = {}
    for link in links:
        hub = (transit or {}).get(link.name)
        suffix = f".{hub}.{link.target}"
        if hub is not None and link.source == hub and link.name.endswith(suffix):
            groups.setdefault((link.name[: -len(suffix)], hub), []).append(link.target)
    meshes = [
        MeshSpec.model_construct(name=name, clusters=[hub, *spokes], topology="hub", hub=hub, transit=True)
        for (name, hub), spokes in sorted(groups.items())
    ]
    return Config.model_construct(version=1, clusters=clusters, links=links, meshes=meshes)


def observe(ws: Workspace, state: State | None, resources: list[ResourceState]) -> dict[str, tuple[str, list[dict]]]:
    """Each resource's phase and conditions, by address: PENDING where an interrupted run left
    work undone, FAILED as recorded, otherwise as the provider sees it."""
    addresses = [f"{r.type}.{r.name}" for r in resources]
    return dict(zip(addresses, observe_each(ws, state, resources, addresses)))


# A ResourceView's fields, read from a ResourceState in one call (in C, not four lookups).
_VIEWED = attrgetter("type", "name", "attributes", "computed")


def observe_each(
    ws: Workspace, state: State | None, resources: list[ResourceState], addresses: list[str] | None = None
) -> list[tuple[str, list[dict]]]:
    """observe(), as a list in the order of `resources` (`addresses`: theirs, if made already)."""
    from skyplan.sdk import ResourceView, StatusRequest

    # Read for every resource of a `skyctl get` (and every 2 s of a watch): addresses are made
    # once, views are built as plain tuples (ResourceView's own __new__ is a Python function).
    if addresses is None:
        addresses = [f"{r.type}.{r.name}" for r in resources]
    clusters = {r.name: r for r in state.resources if r.type == "cluster"} if state else {}
    new = tuple.__new__
    views: list[ResourceView] = []
    add = views.append
    viewed: set[str] = set()  # the clusters in `views`, by name
    settled: list[int] = []  # the resources whose phase the state says, by index
    for index, r in enumerate(resources):
        if r.pending is not None or r.status.phase == "FAILED":
            settled.append(index)
            continue
        fields = _VIEWED(r)
        if fields[0] == "link":  # the provider needs both ends to judge a link
            add(new(ResourceView, fields))
            for end in r.ends:
                if end not in viewed and (cluster := clusters.get(end)) is not None:
                    viewed.add(end)
                    add(new(ResourceView, ("cluster", end, cluster.attributes, cluster.computed)))
        elif fields[1] not in viewed:  # (a cluster already viewed as a link's end is that very view)
            viewed.add(fields[1])
            add(new(ResourceView, fields))
    get = (ws.provider.status(StatusRequest(resources=views)).statuses if views else {}).get
    result = [(report.phase, report.conditions) if (report := get(address)) is not None else ("INIT", []) for address in addresses]
    for index in settled:
        result[index] = _settled(resources[index])
    return result


def _settled(r: ResourceState) -> tuple[str, list[dict]]:
    """The phase of a resource the provider is not asked about, and why."""
    if r.pending is not None:  # newer than a failure it may have been retrying
        return ("PENDING", [{"type": "Applied", "status": "Unknown", "reason": "ApplyInterrupted", "message": _pending_message(r)}])
    return ("FAILED", [{"type": "Applied", "status": "False", "reason": "ApplyFailed", "message": r.status.reason or ""}])


def _pending_message(r: ResourceState) -> str:
    """What an interrupted run left undone on `r`, and which run finishes it."""
    action = r.pending if r.pending in ("create", "delete") else "apply"
    if r.managed_by != "skyctl" or action == "apply":
        return f"an interrupted {action} of it did not finish; the next skyplan apply finishes it"
    if action == "delete":
        again = f"skyctl delete {r.type} {r.name}"
    elif r.type == "link":
        again = f"skyctl create link {r.name} -s {r.ends.source} -t {r.ends.target}"
    else:
        again = f"the skyctl create cluster {r.name} command"
    return f"an interrupted {action} of it did not finish; repeat {again}, or run skyplan apply, to finish it"
