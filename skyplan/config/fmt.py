"""The canonical layout of links.yaml: key order, indentation and list style, with every comment kept.

Pure text in, text out. ruamel.yaml's round-trip mode loads the file, which keeps quoting, number
formats and anchors, and writes it back in the canonical layout. Comments are not left where
ruamel attaches them, because that depends on the order of the keys (a comment above `links:` is
stored on the last value before it). Instead each comment line is first given to the key or list
item it describes, and written back next to that key or item once the tree has been rearranged:

- a comment (or blank line) above a key or item moves with it;
- a comment at the end of a line stays at the end of that key's or item's line;
- a comment indented deeper than the data that follows it (than column 0 at the end of a
  document) closes the block above it, like a commented-out entry after the last one of a list,
  and stays at the end of that block;
- the comments before the first key of a document, up to the last blank line among them, are the
  document's header and stay at its top (all of them when there is no blank line, so that a
  `# yaml-language-server:` line stays first).

The result is checked before it is returned: it must hold the same data and the same comments as
the input, or formatting fails and nothing is written.
"""

from __future__ import annotations

import datetime
import io
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Literal

from skyplan.errors import FormatError

# A list of scalars is written in flow style when its line fits in this many columns.
FLOW_LIST_WIDTH = 80
# Long scalars stay on one line: folding them would be a change the user did not ask for.
_NO_WRAP = 1 << 20

MANIFEST_KEYS = ("apiVersion", "kind", "metadata", "spec", "status")

DocPath = tuple[Any, ...]
ProviderFields = Callable[[str], Sequence[str] | None]


@dataclass(frozen=True)
class Layout:
    """The canonical key order of a mapping, and the layouts of the values it holds."""

    keys: tuple[str, ...] = ()
    children: Mapping[str, Layout] = field(default_factory=dict)
    items: Layout | None = None  # for a list: the layout of each item


def main_layout(provider_name: str, provider_fields: ProviderFields | None = None) -> Layout:
    """The layout of the skyplan document, with the named provider's settings in model order."""
    from skyplan.config.models import TOP_LEVEL_KEYS, BackendSpec, ClusterSpec, LinkSpec, MeshSpec, MovedSpec

    settings = tuple(provider_fields(provider_name) or ()) if provider_fields else ()
    return Layout(
        keys=TOP_LEVEL_KEYS,
        children={
            "provider": Layout(keys=("name",) + tuple(k for k in settings if k != "name")),
            "backend": Layout(keys=tuple(BackendSpec.model_fields)),
            "clusters": Layout(items=Layout(keys=tuple(ClusterSpec.model_fields))),
            "links": Layout(items=Layout(keys=tuple(LinkSpec.model_fields))),
            "meshes": Layout(items=Layout(keys=tuple(MeshSpec.model_fields))),
            "moved": Layout(items=Layout(keys=tuple(f.alias or n for n, f in MovedSpec.model_fields.items()))),
        },
    )


def manifest_layout(kind: str) -> Layout:
    """Kubernetes' customary order for a SkyShift manifest, then its spec in model order."""
    from skyplan.config.manifests import MANIFEST_KINDS, Metadata

    model = MANIFEST_KINDS.get(kind)
    spec_keys = tuple(model.model_fields["spec"].annotation.model_fields) if model else ()
    return Layout(
        keys=MANIFEST_KEYS,
        children={"metadata": Layout(keys=tuple(Metadata.model_fields)), "spec": Layout(keys=spec_keys)},
    )


def format_text(text: str, *, display: str = "links.yaml", provider_fields: ProviderFields | None = None) -> str:
    """`text` in the canonical layout. Raises ConfigError for invalid YAML, located like the loader's."""
    from ruamel.yaml.events import DocumentStartEvent

    from skyplan.config import source

    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    yaml = _yaml()
    # One parse, through the loader's checks (error messages, alias bombs, depth) and ours.
    with _recording(yaml) as events:
        src = source.parse(text, FilePath(display), display, yaml=yaml)
    trees = [document.tree for document in src.documents]
    lines = text.split("\n")
    comments, _ = _scan(text, events)
    starts = [(e.start_mark.line, bool(e.explicit)) for e in events if isinstance(e, DocumentStartEvent)]
    if not trees:  # nothing but comments
        trees, starts = [None], [(0, False)]

    documents: list[list[str | None]] = []
    for index, tree in enumerate(trees):
        begin = 0 if index == 0 else starts[index][0]
        end = starts[index + 1][0] if index + 1 < len(starts) else len(lines)
        marker_line = starts[index][0] if starts[index][1] and documents else None  # a `---` kept
        anchors, child_columns, _ = _anchors(tree, lines)
        mine = [c for n, c in sorted(comments.items()) if begin <= n < end]
        placement = _place(mine, anchors, child_columns, marker_line)
        body = _emit(yaml, tree, _layout_for(tree, provider_fields), placement)
        if tree is None and not body and placement.marker is None:
            continue  # an empty document: the loader skips it too
        if documents:
            comment = placement.marker
            body.insert(0, "---" + (" " * comment.padding + comment.text if comment else ""))
        documents.append(body)

    out = [line for body in documents for line in body]
    result = "\n".join(line or "" for line in out) + "\n" if out else ""
    _verify([d.data for d in src.documents], comments, result, display)
    return result


def render_canonical(data: Mapping[str, Any], layout: Layout | None, header: str = "") -> str:
    """Plain data (mappings, lists, strings, numbers, booleans) as text already in the canonical
    layout: what `format_text` of it returns, without its round trip through ruamel.yaml, which
    costs seconds for a file of thousands of links (`skyplan import` of a large mesh)."""
    out = [line for line in header.split("\n") if line] if header else []
    _render_mapping(data, layout, 0, out)
    return "\n".join(out) + "\n"


def _render_mapping(data: Mapping[str, Any], layout: Layout | None, indent: int, out: list[str], first: str = "") -> None:
    keys = _ordered(list(data), layout.keys) if layout is not None and layout.keys else list(data)
    pad = " " * indent
    for index, key in enumerate(keys):
        value = data[key]
        lead = first if index == 0 and first else pad
        child = layout.children.get(key) if layout is not None else None
        if isinstance(value, Mapping) and value:
            out.append(f"{lead}{_scalar(key)}:")
            _render_mapping(value, child, indent + 2, out)
        elif isinstance(value, list | tuple) and value and any(isinstance(v, Mapping | list | tuple) for v in value):
            out.append(f"{lead}{_scalar(key)}:")
            for item in value:
                _render_mapping(item, child.items if child is not None else None, indent + 4, out, first=" " * (indent + 2) + "- ")
        elif isinstance(value, list | tuple):
            flow = f"{lead}{_scalar(key)}: [{', '.join(_scalar(v, flow=True) for v in value)}]"
            if len(flow) <= FLOW_LIST_WIDTH or not value:
                out.append(flow)
            else:
                out.append(f"{lead}{_scalar(key)}:")
                out.extend(f"{pad}  - {_scalar(v)}" for v in value)
        else:
            out.append(f"{lead}{_scalar(key)}: {_scalar(value)}")


# What YAML (1.1 or 1.2) would read as something other than a string, written plainly: numbers in
# any base, sexagesimals, floats, infinities, dates, booleans and nulls. Such text is quoted.
_NOT_A_STRING = re.compile(
    r"[-+]?(0|[1-9][0-9_]*|0[0-7_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+)"
    r"|[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?"
    r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
    r"|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*"
    r"|(?i:true|false|yes|no|on|off|y|n|null|~|=|<<)"
)
_PLAIN = re.compile(r"[A-Za-z0-9_/+][A-Za-z0-9_./+=:-]*")


def _scalar(value: Any, flow: bool = False) -> str:
    """`value` as a YAML scalar; `flow`: inside [...], where a plain ':' is not always read back."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and not text.endswith(":") and not (flow and ":" in text) and not _NOT_A_STRING.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)  # a YAML double-quoted scalar


# -- reading: where the comments are, and what they belong to -------------------------------------


@dataclass(frozen=True)
class _Line:
    """A line of the file that holds no data: blank, a comment, or a comment after some data."""

    number: int  # 0-based
    kind: Literal["blank", "full", "eol"]
    column: int = 0
    text: str = ""  # from '#' to the end of the line, without trailing spaces
    padding: int = 2  # spaces between the data and an end-of-line comment


@dataclass(frozen=True)
class _Anchor:
    """Where a key or list item starts; comments are placed relative to anchors."""

    path: DocPath
    line: int
    column: int  # of the key, or of the item's dash
    in_flow: bool  # inside a flow collection ([...] or {...})


@dataclass
class _Placement:
    header: list[_Line] = field(default_factory=list)
    marker: _Line | None = None  # the comment on a document's `---` line
    leading: dict[DocPath, list[_Line]] = field(default_factory=dict)
    eol: dict[DocPath, _Line] = field(default_factory=dict)
    trailing: dict[DocPath, list[_Line]] = field(default_factory=dict)

    def paths_holding_comments(self) -> set[DocPath]:
        """Every path with a comment inside it, which keeps a list in block style.

        Blank lines do not count: a list of scalars with only blank lines between its items is
        written in flow style, and those blank lines go.
        """
        inside: set[DocPath] = set()
        for path, comment in self.eol.items():
            inside.update(path[:n] for n in range(len(path)))
        for path, block in self.leading.items():
            if any(line.kind != "blank" for line in block):
                inside.update(path[:n] for n in range(len(path)))
        for path, block in self.trailing.items():
            if any(line.kind != "blank" for line in block):
                inside.update(path[:n] for n in range(len(path) + 1))  # the end of the block itself
        return inside


_BLOCK_INDICATOR = re.compile(r"[|>][0-9+-]*")


def _scan(text: str, events: list) -> tuple[dict[int, _Line], bytearray]:
    """Find blank and comment lines, skipping those inside scalars (block scalars, quoted strings)."""
    from ruamel.yaml.events import ScalarEvent

    covered = bytearray(len(text) + 1)
    for event in events:
        if not isinstance(event, ScalarEvent):
            continue
        start, end = event.start_mark.index, event.end_mark.index
        if event.style in ("|", ">"):
            # The header line (`key: |-  # comment`) may hold a comment; the text starts below it.
            header_end = text.find("\n", start, end)
            indicator = _BLOCK_INDICATOR.search(text, start, header_end if header_end >= 0 else end)
            start = header_end + 1 if header_end >= 0 else end
            if indicator is None or "+" not in indicator.group():
                # Without "keep" chomping, blank lines after the text are not part of it.
                last = len(text[start:end].rstrip(" \t\n"))
                newline = text.find("\n", start + last, end)
                end = newline + 1 if last and newline >= 0 else start + last
        if end > start:
            covered[start:end] = b"\x01" * (end - start)

    found: dict[int, _Line] = {}
    offset = 0
    for number, line in enumerate(text.split("\n")):
        begin, stop = offset, offset + len(line)
        offset = stop + 1
        hash_at = text.find("#", begin, stop)
        while hash_at >= 0 and (covered[hash_at] or (hash_at > begin and text[hash_at - 1] not in " \t")):
            hash_at = text.find("#", hash_at + 1, stop)
        if hash_at >= 0:
            data = text[begin:hash_at].rstrip()
            kind = "eol" if data.strip() or any(covered[begin:hash_at]) else "full"
            padding = hash_at - begin - len(data)
            found[number] = _Line(number, kind, hash_at - begin, text[hash_at:stop].rstrip(), padding)
        elif not line.strip() and not covered[begin] and not any(covered[begin:stop]):
            found[number] = _Line(number, "blank")
    return found, covered


def _anchors(tree: Any, lines: list[str]) -> tuple[list[_Anchor], dict[DocPath, int], set[DocPath]]:
    """Every key and list item in document order; the column of each node's children; first children."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    anchors: list[_Anchor] = []
    child_columns: dict[DocPath, int] = {}
    first_children: set[DocPath] = set()
    seen: set[int] = set()

    def walk(node: Any, path: DocPath, column: int) -> None:
        columns: list[int] = []
        if isinstance(node, CommentedMap | CommentedSeq) and id(node) not in seen:
            seen.add(id(node))  # an alias is the anchored node again; its keys are placed once
            flow = bool(node.fa.flow_style())
            entries = node.items() if isinstance(node, CommentedMap) else enumerate(node)
            positions = node.lc.data or {}
            for key, value in entries:
                position = positions.get(key)
                if position is None:  # a key brought in by a merge (<<)
                    continue
                line, col = position[0], position[1]
                if isinstance(node, CommentedSeq) and not flow:
                    col = _dash_column(lines[line], col)
                child = path + (key,)
                if not columns:
                    first_children.add(child)
                anchors.append(_Anchor(child, line, col, flow))
                columns.append(col)
                walk(value, child, col)
        child_columns[path] = min(columns) if columns else column + 2

    walk(tree, (), -2)
    anchors.sort(key=lambda a: (a.line, a.column))
    return anchors, child_columns, first_children


def _dash_column(line: str, content: int) -> int:
    dash = line.rfind("-", 0, content)
    return dash if dash >= 0 and not line[dash + 1 : content].strip() else content


def _place(comments: list[_Line], anchors: list[_Anchor], child_columns: dict[DocPath, int], marker: int | None) -> _Placement:
    """Give each comment line of one document to the anchor (or block) it belongs to."""
    placement = _Placement()
    by_line: dict[int, list[_Anchor]] = {}
    for anchor in anchors:
        by_line.setdefault(anchor.line, []).append(anchor)
    anchor_lines = sorted(by_line)

    gaps: dict[int, list[_Line]] = {}
    for comment in comments:
        if comment.kind == "eol" and comment.number == marker:
            placement.marker = comment
            continue
        if comment.kind == "eol" and comment.number in by_line:
            here = by_line[comment.number]
            placement.eol[([a for a in here if not a.in_flow] or here)[-1].path] = comment
            continue
        if comment.kind == "eol":  # after `-` or `]` alone on a line: treat it as a line of its own
            comment = _Line(comment.number, "full", comment.column, comment.text)
        gaps.setdefault(bisect_left(anchor_lines, comment.number), []).append(comment)

    for gap, lines in gaps.items():
        after = by_line[anchor_lines[gap]][0] if gap < len(anchor_lines) else None
        if gap == 0:
            blanks = [i for i, line in enumerate(lines) if line.kind == "blank"]
            cut = blanks[-1] + 1 if blanks and after is not None else len(lines)
            placement.header.extend(lines[:cut])
            if lines[cut:]:
                placement.leading.setdefault(after.path, []).extend(lines[cut:])  # type: ignore[union-attr]
            continue
        before = by_line[anchor_lines[gap - 1]][-1]
        target: tuple[str, DocPath] | None = None
        for line in reversed(lines):  # a blank line goes where the next comment of its gap goes
            if line.kind == "full" or target is None:
                target = _target(line, before, after, child_columns)
            slot = placement.leading if target[0] == "leading" else placement.trailing
            slot.setdefault(target[1], []).insert(0, line)
    return placement


def _target(line: _Line, before: _Anchor, after: _Anchor | None, child_columns: dict[DocPath, int]) -> tuple[str, DocPath]:
    # Not indented deeper than the data that follows (column 0 at the end): it leads into that.
    if line.kind == "blank" or line.column <= (after.column if after is not None else 0):
        return ("leading", after.path) if after is not None else ("trailing", ())
    # Deeper: it ends a block that `before` is in, the deepest one whose children start at or
    # left of the comment (a commented-out entry after the last one of a list).
    for depth in range(len(before.path), -1, -1):
        block = before.path[:depth]
        if after is not None and after.path[:depth] == block:
            break
        if child_columns.get(block, 0) <= line.column:
            return "trailing", block
    return ("leading", after.path) if after is not None else ("trailing", ())


# -- writing: the tree in canonical order and style, then the comments back in place ------------


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = _NO_WRAP
    return yaml


def _layout_for(tree: Any, provider_fields: ProviderFields | None) -> Layout | None:
    if not isinstance(tree, dict):
        return None
    if "kind" in tree:
        return manifest_layout(str(tree["kind"]))
    provider = tree.get("provider")
    from skyplan.sdk.registry import DEFAULT_PROVIDER

    name = provider.get("name", DEFAULT_PROVIDER) if isinstance(provider, dict) else DEFAULT_PROVIDER
    return main_layout(str(name), provider_fields)


def _arrange(node: Any, layout: Layout | None, path: DocPath, inside: set[DocPath], flow_lists: dict[DocPath, Any], seen: set[int]) -> None:
    """Reorder keys, choose block or flow style, and drop ruamel's own comments, in place."""
    from ruamel.yaml.comments import Comment, CommentedMap, CommentedSeq, comment_attrib
    from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

    if isinstance(node, LiteralScalarString | FoldedScalarString):
        node.comment = None
    if not isinstance(node, CommentedMap | CommentedSeq) or id(node) in seen:
        return
    seen.add(id(node))
    setattr(node, comment_attrib, Comment())
    if isinstance(node, CommentedMap):
        if layout is not None and layout.keys and not node.merge and type(node) is CommentedMap:
            for key in _ordered(list(node), layout.keys):
                node.move_to_end(key)
        node.fa.set_block_style()
        for key, value in list(node.items()):
            child = layout.children.get(key) if layout is not None and isinstance(key, str) else None
            _arrange(value, child, path + (key,), inside, flow_lists, seen)
        return
    if node and path and path not in inside and not any(isinstance(v, dict | list) for v in node):
        node.fa.set_flow_style()
        flow_lists[path] = node
    else:
        node.fa.set_block_style()
    for index, value in enumerate(node):
        _arrange(value, layout.items if layout is not None else None, path + (index,), inside, flow_lists, seen)


def _ordered(keys: list[Any], canonical: tuple[str, ...]) -> list[Any]:
    """Known keys in canonical order; an unknown key stays right after the key it followed."""
    rank = {name: i for i, name in enumerate(canonical)}
    lead: list[Any] = []
    groups: list[list[Any]] = []
    for key in keys:
        if isinstance(key, str) and key in rank:
            groups.append([key])
        elif groups:
            groups[-1].append(key)
        else:
            lead.append(key)
    groups.sort(key=lambda group: rank[group[0]])
    return lead + [key for group in groups for key in group]


@contextmanager
def _recording(yaml) -> Iterator[list[Any]]:
    """Collect the scalar and document-start events of what `yaml` parses meanwhile.

    Scalar events carry where each scalar ends, which the loaded tree does not; recording them
    while loading spares a second parse of the file.
    """
    from ruamel.yaml.events import DocumentStartEvent, ScalarEvent

    events: list[Any] = []
    parser = yaml.parser
    next_event = parser.get_event

    def recording() -> Any:
        event = next_event()
        if isinstance(event, ScalarEvent | DocumentStartEvent):
            events.append(event)
        return event

    parser.get_event = recording
    try:
        yield events
    finally:
        del parser.get_event


def _load(yaml, text: str) -> tuple[list[Any], list[Any]]:
    """The documents of `text`, and the scalar and document-start events of the same parse."""
    with _recording(yaml) as events:
        return list(yaml.load_all(text)), events


def _dump(yaml, tree: Any) -> str:
    if tree is None:
        return ""
    stream = io.StringIO()
    yaml.dump(tree, stream)
    return stream.getvalue()


def _emit(yaml, tree: Any, layout: Layout | None, placement: _Placement) -> list[str | None]:
    """One document's lines; None stands for a blank line that a comment block brought."""
    flow_lists: dict[DocPath, Any] = {}
    _arrange(tree, layout, (), placement.paths_holding_comments(), flow_lists, set())
    for attempt in range(2):
        dumped = _dump(yaml, tree)
        lines = dumped.split("\n")[:-1]
        reloaded, events = _load(yaml, dumped)
        anchors, child_columns, first_children = _anchors(reloaded[0] if reloaded else None, lines)
        where = {a.path: a for a in anchors}
        too_long = [path for path in flow_lists if path in where and len(lines[where[path].line]) > FLOW_LIST_WIDTH]
        if not too_long or attempt:
            break
        for path in too_long:
            flow_lists[path].fa.set_block_style()
            del flow_lists[path]
    comments, covered = _scan(dumped, events)
    if any(c.kind != "blank" for c in comments.values()):
        raise FormatError("internal: a comment was left in the tree; nothing was written")

    # What is left inside a flow list is blank lines only (comments keep a list in block style).
    in_flow = {path for path in placement.leading if any(path[:n] in flow_lists for n in range(len(path)))}
    in_flow.update(path for path in placement.trailing if any(path[:n] in flow_lists for n in range(len(path) + 1)))
    line_starts = [0]
    for line in lines:
        line_starts.append(line_starts[-1] + len(line) + 1)
    leading = {path: list(block) for path, block in placement.leading.items() if path not in in_flow}
    eol: dict[int, _Line] = {}
    for path, comment in placement.eol.items():
        line = _locate(where, path).line
        newline = line_starts[line] + len(lines[line])
        if line in eol or covered[newline]:  # taken, or a scalar continues on the next line
            leading.setdefault(path, []).append(_Line(comment.number, "full", comment.column, comment.text))
        else:
            eol[line] = comment

    order = {anchor.path: index for index, anchor in enumerate(anchors)}
    line_column: dict[int, int] = {}
    for anchor in anchors:
        line_column.setdefault(anchor.line, anchor.column)
    inserts: list[tuple[tuple[int, int, int], list[str | None]]] = []
    for path, block in placement.trailing.items():
        if path in in_flow:
            continue
        if path == ():
            line, column = len(lines), child_columns.get((), 0)
        else:
            anchor = _locate(where, path)
            later = (a.line for a in anchors[order[path] :] if a.line > anchor.line and a.path[: len(path)] != path)
            line, column = next(later, len(lines)), child_columns[path]
        inserts.append(((line, 0, -len(path)), _render(block, column)))
    for path, block in leading.items():
        anchor = _locate(where, path)
        if path in first_children:
            block = _without_leading_blanks(block)
        inserts.append(((anchor.line, 1, len(path)), _render(block, line_column[anchor.line])))
    inserts.sort(key=lambda item: item[0])

    out: list[str | None] = _render(placement.header, 0)
    pending = iter(inserts)
    insert = next(pending, None)
    for number in range(len(lines) + 1):
        while insert is not None and insert[0][0] == number:
            out.extend(insert[1])
            insert = next(pending, None)
        if number < len(lines):
            out.append(_with_comment(lines[number], eol.get(number)))
    return _tidy(out)


def _locate(where: dict[DocPath, _Anchor], path: DocPath) -> _Anchor:
    if path not in where:
        raise FormatError(f"internal: lost track of {path!r} while formatting; nothing was written")
    return where[path]


def _render(block: list[_Line], column: int) -> list[str | None]:
    return [None if line.kind == "blank" else " " * column + line.text for line in block]


def _without_leading_blanks(block: list[_Line]) -> list[_Line]:
    while block and block[0].kind == "blank":
        block = block[1:]
    return block


def _with_comment(line: str, comment: _Line | None) -> str:
    if comment is None:
        return line
    # The spacing the user chose: comments aligned in a block stay aligned, as the lines of a
    # block move together.
    return line.rstrip() + " " * comment.padding + comment.text


def _tidy(out: list[str | None]) -> list[str | None]:
    """One blank line at most between groups, none at the start or end of a document."""
    tidy: list[str | None] = []
    for line in out:
        if line is None and (not tidy or tidy[-1] is None):
            continue
        tidy.append(line)
    while tidy and tidy[-1] is None:
        tidy.pop()
    return tidy


# -- checking: same data, same comments --------------------------------------------------------


def _verify(before: list[Any], before_comments: dict[int, _Line], after: str, display: str) -> None:
    from ruamel.yaml import YAML

    trees, events = _load(YAML(typ="safe", pure=True), after)  # pure: the same grammar as round-trip
    if [_comparable(d) for d in before if d is not None] != [_comparable(t) for t in trees if t is not None]:
        raise FormatError(f"{display}: formatting would change the data; the file was left unchanged (please report this)")
    if _comment_texts(before_comments) != _comment_texts(_scan(after, events)[0]):
        raise FormatError(f"{display}: formatting would lose or change a comment; the file was left unchanged (please report this)")


def _comparable(value: Any) -> Any:
    """Plain data, as the loader sees it (skyplan.config.source): keys as text, scalars unwrapped."""
    if isinstance(value, dict):
        return {("null" if k is None else str(k)): _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return ("float", repr(float(value)))  # NaN is not equal to itself
    if isinstance(value, datetime.date):
        return value
    return str(value)


def _comment_texts(comments: dict[int, _Line]) -> Counter[str]:
    return Counter(c.text for c in comments.values() if c.kind != "blank")
