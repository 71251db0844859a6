"""`skyplan graph`: the mesh as a picture (Graphviz DOT or Mermaid), a plan's changes coloured.

Clusters are nodes and links are edges. A full mesh (links named `<mesh>.<a>.<b>`, as the
loader names them, between every pair of its members) is drawn as one mesh node that its
members join: 200 clusters make 200 edges rather than 19,900, which a reviewer can read and a
pull-request comment can hold. A hub topology keeps its edges, and the hub is drawn as a hub.
Output is sorted, so pictures diff as well as plans do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from skyplan.plan.model import Action, DesiredResource, Plan
from skyplan.sdk.resources import link_ends

_ACTION = {Action.CREATE: "create", Action.UPDATE: "update", Action.DELETE: "delete", Action.REPLACE: "replace"}
# Terraform's colours: green to add, yellow to change, red to destroy; a replace is both.
_COLOURS = {
    "create": ("#1a7f37", "#dafbe1"),
    "update": ("#9a6700", "#fff8c5"),
    "delete": ("#cf222e", "#ffebe9"),
    "replace": ("#8250df", "#fbefff"),
}
_LEGEND = "green: to add, yellow: to change, red: to destroy, purple: to replace"
_SMALLEST_COLLAPSED_MESH = 3


@dataclass(frozen=True)
class Item:
    """One resource as the picture needs it; `action` None when nothing changes."""

    type: str
    name: str
    attributes: dict[str, Any]
    action: str | None = None


@dataclass
class Picture:
    clusters: dict[str, str | None] = field(default_factory=dict)  # name -> action
    hubs: dict[str, list[str]] = field(default_factory=dict)  # hub cluster -> its meshes
    edges: list[tuple[str, str, str | None, int]] = field(default_factory=list)  # a, b, action, links
    meshes: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)  # mesh -> (member, action)
    title: str | None = None


def items_from_desired(desired: dict[str, DesiredResource]) -> list[Item]:
    return [Item(r.type, r.name, r.attributes) for r in desired.values()]


def items_from_plan(plan: Plan) -> list[Item]:
    """Every resource the plan covers: what it will be, or what it was for a removal."""
    found = []
    for change in plan.changes:
        attributes = change.after if change.after is not None else change.before
        found.append(Item(change.type, change.name, attributes or {}, _ACTION.get(change.action)))
    return found


def _mesh_name(name: str, source: str, target: str) -> str | None:
    """The mesh a link was generated for, if it is named as the loader names mesh links."""
    suffix = f".{source}.{target}"
    return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else None


def _merge(actions: Iterable[str | None]) -> str | None:
    distinct = set(actions)
    return distinct.pop() if len(distinct) == 1 else "update"


def _collapse(links: list[tuple[str, str, str | None]]) -> list[tuple[str, str | None]] | None:
    """A full mesh's members and the action each brings, or None if the links are not one.

    A member whose every link in the mesh is added (or removed) joins (or leaves) the mesh;
    every other link must then be unchanged, or the picture would hide a change.
    """
    members = sorted({end for a, b, _ in links for end in (a, b)})
    pairs = {frozenset((a, b)) for a, b, _ in links}
    if len(members) < _SMALLEST_COLLAPSED_MESH or len(pairs) != len(links) or len(links) != len(members) * (len(members) - 1) // 2:
        return None
    by_member: dict[str, set[str | None]] = defaultdict(set)
    for a, b, action in links:
        by_member[a].add(action)
        by_member[b].add(action)
    moving = {m: next(iter(acts)) for m, acts in by_member.items() if len(acts) == 1 and None not in acts}
    for a, b, action in links:
        expected = {moving[m] for m in (a, b) if m in moving} or {None}
        if expected != {action}:
            return None
    return [(m, moving.get(m)) for m in members]


def build_picture(items: list[Item], title: str | None = None) -> Picture:
    picture = Picture(title=title)
    for item in sorted(items, key=lambda i: i.name):
        if item.type == "cluster":
            picture.clusters[item.name] = item.action
    by_mesh: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
    plain: list[tuple[str, str, str | None]] = []
    for item in sorted(items, key=lambda i: i.name):
        if item.type != "link":
            continue
        source, target = link_ends(item.attributes)
        for end in (source, target):
            picture.clusters.setdefault(end, None)  # a cluster outside the plan: drawn plain
        mesh = _mesh_name(item.name, source, target)
        (by_mesh[mesh] if mesh else plain).append((source, target, item.action))
    for mesh, links in sorted(by_mesh.items()):
        members = _collapse(links)
        if members is not None:
            picture.meshes[mesh] = members
            continue
        plain.extend(links)
        ends = [frozenset((a, b)) for a, b, _ in links]
        hubs = set.intersection(*(set(pair) for pair in ends)) if len(ends) >= 2 else set()
        for hub in sorted(hubs):
            picture.hubs.setdefault(hub, []).append(mesh)
    pairs: dict[tuple[str, str], list[str | None]] = defaultdict(list)
    for a, b, action in plain:
        pairs[(min(a, b), max(a, b))].append(action)
    picture.edges = [(a, b, _merge(actions), len(actions)) for (a, b), actions in sorted(pairs.items())]
    picture.clusters = dict(sorted(picture.clusters.items()))
    return picture


# -- DOT ----------------------------------------------------------------------------------------


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dot_colour(action: str | None, *, fill: bool) -> str:
    if action is None:
        return ""
    line, background = _COLOURS[action]
    style = ', style="rounded,filled,dashed"' if action == "delete" and fill else ""
    return f', color="{line}", fontcolor="{line}"' + (f', fillcolor="{background}"{style}' if fill else "")


def render_dot(picture: Picture) -> str:
    lines = ["graph skyplan {"]
    label = picture.title + "\n" + _LEGEND if picture.title else None
    lines.append('  graph [rankdir=LR, fontname="Helvetica"' + (f", labelloc=t, label={_dot_quote(label)}" if label else "") + "];")
    lines.append('  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica"];')
    lines.append('  edge [fontname="Helvetica"];')
    for name, action in picture.clusters.items():
        attrs = f"label={_dot_quote(name)}"
        if name in picture.hubs:
            attrs = f"label={_dot_quote(name + ' (hub of ' + ', '.join(picture.hubs[name]) + ')')}, shape=hexagon"
        lines.append(f"  {_dot_quote('cluster.' + name)} [{attrs}{_dot_colour(action, fill=True)}];")
    for mesh in picture.meshes:
        size = len(picture.meshes[mesh])
        lines.append(f"  {_dot_quote('mesh.' + mesh)} [label={_dot_quote(f'mesh {mesh} ({size} clusters)')}, shape=ellipse, style=dashed];")
    for a, b, action, count in picture.edges:
        attrs = [f"label={_dot_quote(f'{count} links')}"] if count > 1 else []
        if action == "delete":
            attrs.append("style=dashed")
        text = ", ".join(attrs) + _dot_colour(action, fill=False)
        lines.append(f"  {_dot_quote('cluster.' + a)} -- {_dot_quote('cluster.' + b)}" + (f" [{text.lstrip(', ')}]" if text else "") + ";")
    for mesh, members in picture.meshes.items():
        for member, action in members:
            text = "style=dotted" + _dot_colour(action, fill=False)
            lines.append(f"  {_dot_quote('cluster.' + member)} -- {_dot_quote('mesh.' + mesh)} [{text}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- Mermaid ------------------------------------------------------------------------------------


def _mermaid_id(prefix: str, name: str) -> str:
    # Names may hold `.` and `-`, which Mermaid ids may not: escape them, one way only.
    return prefix + "".join(c if c.isascii() and c.isalnum() else ("__" if c == "_" else f"_{ord(c):02x}") for c in name)


_PLAIN_TEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:()+-/")


def _mermaid_text(text: str) -> str:
    # Labels come from plan files, which anyone can edit: anything but plain text becomes an
    # entity code (#34;), so that no quote or newline can end a label and start a directive.
    return "".join(c if c in _PLAIN_TEXT else f"#{ord(c)};" for c in text)


def render_mermaid(picture: Picture) -> str:
    lines = []
    if picture.title:
        # Front matter: the one title Mermaid shows (GitHub renders it above the picture).
        lines += ["---", f'title: "{picture.title} ({_LEGEND})"', "---"]
    lines.append("flowchart LR")
    classes: dict[str, list[str]] = defaultdict(list)
    for name, action in picture.clusters.items():
        node = _mermaid_id("c_", name)
        if name in picture.hubs:
            lines.append(f'  {node}{{{{"{_mermaid_text(name + " (hub of " + ", ".join(picture.hubs[name]) + ")")}"}}}}')
        else:
            lines.append(f'  {node}["{_mermaid_text(name)}"]')
        if action:
            classes[action].append(node)
    for mesh, members in picture.meshes.items():
        lines.append(f'  {_mermaid_id("m_", mesh)}(("{_mermaid_text(f"mesh {mesh} ({len(members)} clusters)")}"))')
    styled: dict[str, list[int]] = defaultdict(list)
    index = 0
    for a, b, action, count in picture.edges:
        arrow = "x--x" if action == "delete" else "---"  # a removed link is drawn cut
        label = f'|"{count} links"|' if count > 1 else ""
        lines.append(f"  {_mermaid_id('c_', a)} {arrow}{label} {_mermaid_id('c_', b)}")
        if action:
            styled[action].append(index)
        index += 1
    for mesh, members in picture.meshes.items():
        for member, action in members:
            lines.append(f"  {_mermaid_id('c_', member)} -.- {_mermaid_id('m_', mesh)}")
            if action:
                styled[action].append(index)
            index += 1
    for action in sorted(classes):
        line, background = _COLOURS[action]
        dash = ",stroke-dasharray:4 3" if action == "delete" else ""
        lines.append(f"  classDef {action} fill:{background},stroke:{line},color:{line}{dash}")
        lines.append(f"  class {','.join(classes[action])} {action}")
    for action in sorted(styled):
        lines.append(f"  linkStyle {','.join(map(str, styled[action]))} stroke:{_COLOURS[action][0]},stroke-width:2px")
    return "\n".join(lines) + "\n"


def render_graph(picture: Picture, fmt: str) -> str:
    return render_mermaid(picture) if fmt == "mermaid" else render_dot(picture)
