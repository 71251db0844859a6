"""The rules of links.yaml that span entries: names, references, addresses and overlaps."""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from skyplan.config.diagnostics import Diagnostic
from skyplan.config.models import NAME_PATTERN, NAME_RULE, ClusterSpec, Config, LinkSpec
from skyplan.config.gateway import GATEWAY_RULE, parse_gateway
from skyplan.config.network import IPNetwork, overlapping_pairs, parse_endpoint, parse_network
from skyplan.construct import trusted

_NAME = re.compile(NAME_PATTERN)
# Many names at once, one per line: one pass of the same rule over a whole file's (or state's)
# names is far quicker than a match per name, and almost every name is valid.
_NAME_LINES = re.compile(f"(?:{NAME_PATTERN[1:-1]}\n)*{NAME_PATTERN[1:-1]}")

# A full mesh of 200 clusters is 19,900 links, each made from names already checked.
_new_link = trusted(LinkSpec)


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid cluster or link name, or None if it is."""
    if _NAME.match(name) and "\n" not in name:
        return None
    return NAME_RULE


def expand_meshes(config: Config, diagnostics: list[Diagnostic]) -> tuple[Config, dict[int, int]]:
    """Add the links that `meshes:` entries describe; return them with the mesh each came from."""
    if not config.meshes:
        return config, {}
    known = {c.name for c in config.clusters}
    links = list(config.links)
    origins: dict[int, int] = {}
    for m, mesh in enumerate(config.meshes):
        path = ("meshes", m)
        problem = name_problem(mesh.name)
        if problem:
            diagnostics.append(Diagnostic(f"meshes[{m}].name: invalid name '{mesh.name}': {problem}", path=path + ("name",)))
            continue
        bad = False
        for j, member in enumerate(mesh.clusters):
            if member not in known:
                diagnostics.append(Diagnostic(_not_defined(f"meshes[{m}].clusters[{j}]", member, known), path=path + ("clusters", j)))
                bad = True
        if len(set(mesh.clusters)) != len(mesh.clusters):
            diagnostics.append(Diagnostic(f"meshes[{m}].clusters: a cluster is listed twice", path=path + ("clusters",)))
            bad = True
        if mesh.topology == "hub":
            if mesh.hub is None:
                diagnostics.append(Diagnostic(f"meshes[{m}]: topology 'hub' needs 'hub: <cluster>'", path=path))
                bad = True
            elif mesh.hub not in mesh.clusters:
                diagnostics.append(Diagnostic(f"meshes[{m}].hub: '{mesh.hub}' is not one of the mesh's clusters", path=path + ("hub",)))
                bad = True
        elif mesh.hub is not None:
            diagnostics.append(Diagnostic(f"meshes[{m}].hub: only meaningful with topology: hub", path=path + ("hub",)))
            bad = True
        if mesh.transit and mesh.topology != "hub":
            diagnostics.append(
                Diagnostic(
                    f"meshes[{m}].transit: only meaningful with topology: hub (the spokes reach each other through the hub)",
                    path=path + ("transit",),
                )
            )
            bad = True
        if bad:
            continue
        for source, target in mesh_pairs(mesh.clusters, mesh.topology, mesh.hub):
            origins[len(links)] = m
            links.append(_new_link(name=f"{mesh.name}.{source}.{target}", source=source, target=target))
    return config.model_copy(update={"links": links}), origins


def mesh_pairs(members: list[str], topology: str, hub: str | None) -> list[tuple[str, str]]:
    if topology == "hub":
        return [(hub, member) for member in members if member != hub]  # type: ignore[misc]
    return [(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]


def transit_hubs(config: Config) -> dict[str, str]:
    """Link name -> hub, for the links that meshes with `topology: hub, transit: true` generate."""
    hubs: dict[str, str] = {}
    for mesh in config.meshes:
        if mesh.topology == "hub" and mesh.transit and mesh.hub is not None:
            for source, target in mesh_pairs(mesh.clusters, mesh.topology, mesh.hub):
                hubs[f"{mesh.name}.{source}.{target}"] = source  # the name expand_meshes gives it
    return hubs


def check(config: Config, provider) -> list[Diagnostic]:
    """Every cross-entry rule, all diagnostics at once (the provider's own rules included)."""
    found: list[Diagnostic] = []
    clusters_by_name = _check_names(config.clusters, "clusters", found)
    _check_names(config.links, "links", found)
    networks = _check_clusters(config.clusters, found)
    dialable = {c.name for c in config.clusters if c.endpoint is not None}
    peers = _check_links(config.links, clusters_by_name, found, dialable)
    groups = _transit_groups(config, clusters_by_name, peers)
    _check_transit(groups, networks, found)
    _check_reach(config.clusters, peers, networks, found, groups)
    _check_backend(config, found)
    _check_moved(config, found)
    if provider is None:
        return found
    from skyplan.sdk import ResourceView, ValidateRequest

    hubs = transit_hubs(config)
    links = []
    for link in config.links:  # 10,000 of them in a large file: the common one without a call
        hub = hubs.get(link.name) if hubs else None
        if hub is None and link.preshared_key is None:
            arguments = {"source": link.source, "target": link.target}
        else:
            arguments = link_arguments(link, hub)
        links.append(ResourceView("link", link.name, arguments))
    request = ValidateRequest(clusters=[ResourceView("cluster", c.name, cluster_arguments(c)) for c in config.clusters], links=links)
    found.extend(provider.validate(request).diagnostics)
    return found


_CLUSTER_ARGUMENTS = tuple(name for name in ClusterSpec.model_fields if name != "name")


def cluster_arguments(cluster: ClusterSpec) -> dict:
    """What a provider's validate sees of a cluster entry: every argument as written (unset ones
    left out)."""
    arguments: dict = {}
    for name in _CLUSTER_ARGUMENTS:
        value = getattr(cluster, name)
        if value is not None:
            arguments[name] = value
    return arguments


def link_arguments(link: LinkSpec, transit_hub: str | None = None) -> dict:
    """What a provider's validate sees of a link entry: its ends, and what else is set."""
    arguments: dict = {"source": link.source, "target": link.target}
    if link.preshared_key is not None:
        arguments["preshared_key"] = link.preshared_key
    if transit_hub is not None and transit_hub == link.source:
        arguments["transit_hub"] = transit_hub
    return arguments


def _check_backend(config: Config, found: list[Diagnostic]) -> None:
    if config.backend.url is None:
        return
    from skyplan.state.urls import URLProblem, check_url

    try:
        check_url(config.backend.url)
    except URLProblem as exc:
        # The message quotes nothing of the URL: a password may be anywhere in a malformed one.
        found.append(Diagnostic(f"backend.url: {exc}", path=("backend", "url")))


def check_entries(clusters: list[ClusterSpec], link_names: list[str], link_ends: set[str]) -> list[Diagnostic]:
    """The rules each entry passes on its own: names (unique), endpoints, networks, link ends.

    What a state or a saved plan, which others can write, is held to before anything uses it;
    rules between entries (references, overlaps, room in the pool) belong to a configuration.
    Links come as their names and the set of every cluster name they join: that is all these
    rules read, and a model per link would cost more than the rules.
    """
    found: list[Diagnostic] = []
    known = _check_names(clusters, "clusters", found)
    check_names(link_names, "links", found)
    _check_clusters(clusters, found)
    for end in sorted(link_ends - known.keys()):
        if name_problem(end):
            found.append(
                Diagnostic(f"links: invalid cluster name '{end}' at an end of a link: {NAME_RULE}", path=("links", end), where="links")
            )
    return found


def _check_names(entries, section: str, found: list[Diagnostic]) -> dict[str, int]:
    return check_names([entry.name for entry in entries], section, found)


def check_names(names: list[str], section: str, found: list[Diagnostic]) -> dict[str, int]:
    """Each name by the name rule and unique in `section`; return each name's first index."""
    first = dict(zip(names, range(len(names))))
    if len(first) == len(names):
        lines = "\n".join(names)
        # One name per line, so a name holding a newline must not pass as two valid lines.
        if not names or (lines.count("\n") == len(names) - 1 and _NAME_LINES.fullmatch(lines)):
            return first  # all valid, none twice
    seen: dict[str, int] = {}
    kind = section[:-1]
    for i, name in enumerate(names):
        problem = name_problem(name)
        if problem:
            found.append(Diagnostic(f"{section}[{i}].name: invalid {kind} name '{name}': {problem}", path=(section, i, "name")))
        elif name in seen:
            found.append(
                Diagnostic(
                    f"{section}[{i}].name: duplicate {kind} name '{name}' (also {section}[{seen[name]}])",
                    path=(section, i, "name"),
                )
            )
        else:
            seen[name] = i
    return seen


def _check_clusters(clusters: list[ClusterSpec], found: list[Diagnostic]) -> dict[str, list[IPNetwork]]:
    networks: dict[str, list[IPNetwork]] = {}
    for i, cluster in enumerate(clusters):
        if cluster.endpoint is not None:  # none: behind NAT, it only dials out
            try:
                parse_endpoint(cluster.endpoint)
            except ValueError as exc:
                found.append(Diagnostic(f"clusters[{i}].endpoint: {exc}", path=("clusters", i, "endpoint")))
        if cluster.gateway is not None:
            try:
                parse_gateway(cluster.gateway)
            except ValueError as exc:
                found.append(
                    Diagnostic(
                        f"clusters[{i}].gateway: the gateway {exc}; write {GATEWAY_RULE}",
                        path=("clusters", i, "gateway"),
                    )
                )
        own: list[tuple[IPNetwork, int]] = []  # with the index it has in the file
        for j, text in enumerate(cluster.subnets):
            try:
                own.append((parse_network(text), j))
            except ValueError as exc:
                found.append(Diagnostic(f"clusters[{i}].subnets[{j}]: {exc}", path=("clusters", i, "subnets", j)))
        for (a, _), (b, j) in overlapping_pairs(own) if len(own) > 1 else ():
            found.append(
                Diagnostic(f"clusters[{i}].subnets[{j}]: {b} overlaps {a} of the same cluster", path=("clusters", i, "subnets", j))
            )
        networks[cluster.name] = [n for n, _ in own]
    return networks


def _check_links(
    links: list[LinkSpec], clusters: dict[str, int], found: list[Diagnostic], dialable: set[str] | None = None
) -> dict[str, dict[str, int]]:
    """Check ends; return each cluster's peers, each with the first link that joins them.

    `dialable`: the clusters with an endpoint; a link needs one end that the other can dial.
    """
    peers: dict[str, dict[str, int]] = defaultdict(dict)
    for i, link in enumerate(links):
        source, target = link.source, link.target
        if source not in clusters or target not in clusters or source == target:
            for end, name in (("source", source), ("target", target)):
                if name not in clusters:
                    found.append(Diagnostic(_not_defined(f"links[{i}].{end}", name, clusters), path=("links", i, end)))
            if source == target:
                found.append(
                    Diagnostic(
                        f"links[{i}]: source and target are the same cluster '{source}'", path=("links", i, "target"), where=f"links[{i}]"
                    )
                )
            continue
        if dialable is not None and source not in dialable and target not in dialable:
            # Both behind NAT: each only dials out, so no handshake can ever start.
            found.append(
                Diagnostic(
                    f"links[{i}]: neither cluster '{link.source}' nor cluster '{link.target}' has an endpoint, so neither "
                    "can dial the other; give one an endpoint, or make both spokes of a hub that has one "
                    "(meshes: topology: hub, transit: true)",
                    path=("links", i),
                )
            )
        mine = peers[source]
        if target in mine:  # joined already, by the link recorded there (either way round)
            first = links[mine[target]].name
            found.append(
                Diagnostic(
                    f"links[{i}]: link '{link.name}' joins the same clusters as link '{first}'; "
                    "they share one peering, which lasts while either exists",
                    severity="warning",
                    path=("links", i),
                )
            )
            continue
        mine[target] = i
        peers[target][source] = i
    return peers


@dataclass(frozen=True)
class _TransitGroup:
    """A transit hub mesh: its hub and spokes, and the link that joins each spoke to the hub."""

    mesh: int  # index in meshes
    hub: str
    members: tuple[tuple[str, int], ...]  # (cluster, index in the mesh's clusters), hub included
    links: dict[str, int]  # spoke -> index of the link (peering) that joins it to the hub

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.members)


def _transit_groups(config: Config, clusters: dict[str, int], peers: dict[str, dict[str, int]]) -> list[_TransitGroup]:
    """The meshes with `topology: hub, transit: true` whose members and links are all valid."""
    groups = []
    for m, mesh in enumerate(config.meshes):
        if not (mesh.transit and mesh.topology == "hub" and mesh.hub in mesh.clusters):
            continue
        if len(set(mesh.clusters)) != len(mesh.clusters) or any(c not in clusters for c in mesh.clusters):
            continue  # reported by expand_meshes
        hub_peers = peers.get(mesh.hub, {})
        links = {spoke: hub_peers[spoke] for spoke in mesh.clusters if spoke in hub_peers}
        groups.append(_TransitGroup(m, mesh.hub, tuple((c, j) for j, c in enumerate(mesh.clusters)), links))
    return groups


def _check_transit(groups: list[_TransitGroup], networks: dict[str, list[IPNetwork]], found: list[Diagnostic]) -> None:
    """A transit hub routes between its spokes: their networks and the hub's must not overlap."""
    for group in groups:
        tagged = [(n, (name, j)) for name, j in group.members for n in networks.get(name, [])]
        reported: set[tuple] = set()
        for (a, (owner_a, j_a)), (b, (owner_b, j_b)) in overlapping_pairs(tagged):
            if owner_a == owner_b:
                continue  # within one cluster: already reported by _check_clusters
            if j_a > j_b:  # told at the later member
                (a, owner_a, j_a), (b, owner_b, j_b) = (b, owner_b, j_b), (a, owner_a, j_a)
            key = (owner_b, str(b), owner_a, str(a))
            if key in reported:
                continue
            reported.add(key)
            found.append(
                Diagnostic(
                    f"meshes[{group.mesh}].clusters[{j_b}]: {b} of cluster '{owner_b}' overlaps {a} of cluster '{owner_a}'; "
                    f"the transit hub '{group.hub}' routes between them, so their networks must not overlap",
                    path=("meshes", group.mesh, "clusters", j_b),
                )
            )


def _check_reach(clusters, peers, networks, found: list[Diagnostic], groups: Sequence[_TransitGroup] = ()) -> None:
    """What one cluster reaches through its links must not overlap: one route per address.

    A spoke of a transit hub also reaches the other spokes through the hub, except those it has
    a direct peering with: a direct peering wins, the hub does not route that spoke's networks.
    """
    reported: set[tuple] = set()
    spoke_of: dict[str, list[_TransitGroup]] = defaultdict(list)
    for group in groups:
        for spoke in group.links:
            spoke_of[spoke].append(group)
    # What a cluster reaches is a part of all the networks: when no two of those overlap, as in
    # any valid file, no cluster reaches an overlap, and one sweep over the whole replaces one per
    # cluster (each cluster's networks are sorted again with every peer's, 20 times as many).
    disjoint = not overlapping_pairs([(n, None) for own in networks.values() for n in own])
    if disjoint and not groups:
        return
    for cluster in clusters:
        direct = peers.get(cluster.name, {})
        tagged = [] if disjoint else [(n, (cluster.name, None)) for n in networks.get(cluster.name, [])]
        for peer, link_index in () if disjoint else direct.items():
            tagged.extend((n, (peer, link_index)) for n in networks.get(peer, []))
        through: dict[str, str] = {}  # cluster reached through a hub -> that hub
        # Cluster -> the link it is reached through (a copy only for a spoke, which adds to it).
        reach = dict(direct) if cluster.name in spoke_of else direct
        for group in spoke_of.get(cluster.name, ()):
            via = group.links[cluster.name]
            for other in group.links:
                if other == cluster.name or other in direct:
                    continue
                if other in through:
                    found.append(
                        Diagnostic(
                            f"links[{via}]: cluster '{cluster.name}' would reach cluster '{other}' through two transit "
                            f"hubs, '{through[other]}' and '{group.hub}'; only one can route it",
                            path=("links", via),
                        )
                    )
                    continue
                through[other] = group.hub
                reach[other] = via
                if not disjoint:
                    tagged.extend((n, (other, via)) for n in networks.get(other, []))
        if disjoint:
            continue  # only the two-hubs check above applies
        # The groups this cluster is in: overlaps within one are _check_transit's to report.
        inside = [group.names for group in groups if cluster.name in group.names] if groups else []
        for (a, (owner_a, _)), (b, (owner_b, link_b)) in overlapping_pairs(tagged):
            if owner_a == owner_b:
                continue  # within one cluster: already reported by _check_clusters
            if inside and any(owner_a in names and owner_b in names for names in inside):
                continue  # within one transit group: reported by _check_transit, at the mesh
            link_index = link_b if link_b is not None else reach[owner_a]
            # Seen from either end, a link that joins overlapping subnets is one problem.
            key = (frozenset((str(a), str(b))), link_index if cluster.name in (owner_a, owner_b) else cluster.name)
            if key in reported:
                continue
            reported.add(key)
            def side(owner, net):
                return f"its own subnet {net}" if owner == cluster.name else f"{net} of cluster '{owner}'"
            found.append(
                Diagnostic(
                    f"links[{link_index}]: cluster '{cluster.name}' would reach {side(owner_a, a)} and "
                    f"{side(owner_b, b)}, which overlap",
                    path=("links", link_index),
                )
            )


def _check_moved(config: Config, found: list[Diagnostic]) -> None:
    """`moved` entries: addresses of one type, `to` declared and `from` no longer, no chain or cycle."""
    if not config.moved:
        return
    declared = {f"cluster.{c.name}" for c in config.clusters} | {f"link.{link.name}" for link in config.links}
    sources: dict[str, int] = {}
    targets: dict[str, int] = {}
    good: list[int] = []
    for i, entry in enumerate(config.moved):
        path = ("moved", i)
        bad = False
        for key, address in (("from", entry.from_), ("to", entry.to)):
            problem = _address_problem(address)
            if problem:
                found.append(Diagnostic(f"moved[{i}].{key}: {problem}", path=path + (key,)))
                bad = True
        if bad:
            continue
        if entry.from_.split(".", 1)[0] != entry.to.split(".", 1)[0]:
            found.append(
                Diagnostic(f"moved[{i}]: {entry.from_} and {entry.to} are not of one type; a move keeps the type", path=path)
            )
            continue
        if entry.from_ == entry.to:
            found.append(Diagnostic(f"moved[{i}]: {entry.from_} is moved to itself", path=path + ("to",), where=f"moved[{i}]"))
            continue
        if entry.from_ in sources:
            found.append(
                Diagnostic(f"moved[{i}].from: {entry.from_} is already moved by moved[{sources[entry.from_]}]", path=path + ("from",))
            )
            continue
        if entry.to in targets:
            found.append(
                Diagnostic(f"moved[{i}].to: {entry.to} is already the target of moved[{targets[entry.to]}]", path=path + ("to",))
            )
            continue
        sources[entry.from_] = i
        targets[entry.to] = i
        good.append(i)
    in_cycle: set[int] = set()
    for i in good:
        entry = config.moved[i]
        if i in in_cycle or entry.to not in sources:
            continue
        # Follow the chain from this entry: back to its start is a cycle, anything else a chain.
        seen, address = [i], entry.to
        while address in sources and sources[address] not in seen:
            seen.append(sources[address])
            address = config.moved[sources[address]].to
        if address == entry.from_:
            in_cycle.update(seen)
            steps = " -> ".join([entry.from_, *(config.moved[j].to for j in seen)])
            found.append(Diagnostic(f"moved[{i}]: the moves form a cycle: {steps}", path=("moved", i)))
    for i in good:
        entry = config.moved[i]
        if i in in_cycle:
            continue
        path = ("moved", i)
        if entry.to in sources and sources[entry.to] not in in_cycle:
            j = sources[entry.to]
            found.append(
                Diagnostic(
                    f"moved[{i}].to: {entry.to} is moved on by moved[{j}]; chains are not allowed: "
                    f"move {entry.from_} to {config.moved[j].to} directly",
                    path=path + ("to",),
                )
            )
            continue
        kind, name = entry.to.split(".", 1)
        if entry.to not in declared:
            known = [a.split(".", 1)[1] for a in declared if a.startswith(f"{kind}.")]
            message = f"moved[{i}].to: {kind} '{name}' is not declared in the file"
            close = difflib.get_close_matches(name, known, n=1)
            found.append(Diagnostic(message + (f"; did you mean '{close[0]}'?" if close else ""), path=path + ("to",)))
        if entry.from_ in declared:
            old = entry.from_.split(".", 1)[1]
            found.append(
                Diagnostic(
                    f"moved[{i}].from: {kind} '{old}' is still declared in the file; a moved resource is declared "
                    "only under its new name",
                    path=path + ("from",),
                )
            )


def _address_problem(address: str) -> str | None:
    kind, dot, name = address.partition(".")
    if kind not in ("cluster", "link") or not dot:
        return f"'{address}' is not a resource address; write cluster.NAME or link.NAME"
    problem = name_problem(name)
    return f"invalid {kind} name '{name}': {problem}" if problem else None


def _not_defined(where: str, name: str, known) -> str:
    message = f"{where}: cluster '{name}' is not defined"
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        message += f"; did you mean '{close[0]}'?"
    return message
