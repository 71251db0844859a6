"""Reading YAML documents safely, keeping the line and column of every key and value."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyplan.config import scalars
from skyplan.config.diagnostics import Diagnostic
from skyplan.errors import ConfigError

# A links.yaml of 100,000 links is about 6 MB; anything far beyond that is a mistake or an attack.
MAX_FILE_BYTES = 32 * 1024 * 1024
# Aliases let a small file describe a huge tree ("billion laughs"); count the tree, not the text.
MAX_EXPANDED_NODES = 2_000_000
MAX_DEPTH = 64
# A lone surrogate: not a character, and not encodable in UTF-8 (state, plans and paths are).
SURROGATE = re.compile(r"[\ud800-\udfff]")
_NOT_FAST = re.compile(r"[\ud800-\udfff\x85\u2028\u2029\ufeff]")
_TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels)"

Position = tuple[int, int]


@dataclass
class Document:
    """One YAML document of a file: its data as plain Python, and its ruamel tree for positions."""

    index: int
    data: Any
    tree: Any
    position: Position


@dataclass
class Source:
    path: Path
    display: str
    documents: list[Document] = field(default_factory=list)


def read_text(path: Path, display: str) -> str:
    """The text of a configuration, template or variables file, within the limits.

    The file may be a symlink to another file of its own folder (links.yaml -> prod.yaml), never
    one that leads out of it: a pull request could point links.yaml at /proc/self/environ or a
    key elsewhere on the runner, and messages quote values of what they read.
    """
    if path.is_symlink():
        try:
            target, folder = path.resolve(strict=True), path.parent.resolve(strict=True)
        except (OSError, RuntimeError):
            raise _fail(display, "is a symlink that leads nowhere readable") from None
        if folder not in target.parents:
            raise _fail(display, "is a symlink to a file outside its folder; skyplan reads only files of the workspace")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _fail(display, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")
        with path.open("rb") as handle:
            # A pipe or a device has no size to check first (/dev/zero never ends): read no further.
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise _fail(display, f"file is more than {MAX_FILE_BYTES} bytes, the limit")
    except FileNotFoundError:
        raise _fail(display, "no such file") from None
    except IsADirectoryError:
        raise _fail(display, "is a directory, not a configuration file") from None
    except OSError as exc:
        raise _fail(display, f"cannot read: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [Diagnostic("file is not valid UTF-8 text", file=display, line=line, column=column)]
        ) from None


def parse(text: str, path: Path, display: str, *, yaml: Any = None) -> Source:
    """Parse every document of `text`; YAML syntax errors stop here with their position.

    `yaml` is a round-trip ruamel.yaml.YAML to parse with, for callers that set more options
    (fmt keeps quotes); duplicate keys are refused whatever it says.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if "\x00" in text:
        offset = text.index("\x00")
        line = text.count("\n", 0, offset) + 1
        raise ConfigError([Diagnostic("file contains a NUL byte", file=display, line=line, column=1)])
    if yaml is None:
        yaml = YAML(typ="rt")
    yaml.Scanner = _depth_limited_scanner()
    yaml.Composer = _checking_composer()
    yaml.Constructor = _reporting_constructor()
    yaml.allow_duplicate_keys = False
    source = Source(path=path, display=display)
    try:
        for index, tree in enumerate(yaml.load_all(text)):
            position = _start(tree)
            data = _to_plain(tree, display, position)
            source.documents.append(Document(index, data, tree, position))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        message = message.replace("\n", " ")
        where = (mark.line + 1, mark.column + 1) if mark else None
        raise ConfigError([Diagnostic(f"YAML: {message}").located(display, where)]) from None
    except YAMLError as exc:
        raise _fail(display, f"YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise _fail(display, f"YAML: {_TOO_DEEP}") from None
    except AssertionError as exc:  # ruamel asserts on some directives (`%YAML 1.29`)
        raise _fail(display, f"YAML: {str(exc).splitlines()[0] if str(exc) else 'invalid YAML'}") from None
    except KeyError:  # and looks up rules for a version it read but does not know
        raise _fail(display, "YAML: unsupported %YAML version; skyplan reads YAML 1.1 and 1.2") from None
    except NotImplementedError:  # ruamel gives up on some comments ("overlap in comment")
        raise _fail(
            display,
            "YAML: cannot read a comment between a key and its value on the next line, before blank lines; move the comment",
        ) from None
    return source


def parse_fast(text: str, path: Path, display: str) -> Source | None:
    """Plain data without positions, line by line (config/block_lines.py) or else straight from
    libyaml's events: None at the first sign of trouble.

    Valid files, the common case, load several times faster this way; anything this path does
    not accept is parsed again by `parse`, which keeps positions for the messages. What it
    accepts, it reads exactly as `parse` does (tests/config/test_fast_parity.py compares the two
    over every file and case of the suite).
    """
    if "\x00" in text or "%YAML" in text:
        return None  # odd bytes and version directives: leave them to the careful path
    if "\\u" in text or "\\U" in text or (not text.isascii() and _NOT_FAST.search(text)):
        # What may hold a lone surrogate is checked, with positions, on the careful path; and
        # libyaml takes NEL, LS, PS (YAML 1.1's line breaks) and a BOM where ruamel does not.
        return None
    if "\t" in text or text.startswith("...") or "\n..." in text or "\r..." in text:
        # libyaml takes tabs where ruamel's scanner refuses them (`key:\tvalue`), and a document
        # end marker (`...`) where no document is open.
        return None
    from skyplan.config import block_lines

    try:
        # Most files are plain block mappings and lists, read line by line; the rest by libyaml.
        # A plain value that scalars.plain_value declines (a date, say) stops both: it raises.
        data = block_lines.read(text, MAX_EXPANDED_NODES)
        documents = [data] if data is not None else _FastBuilder(text).documents()
    except Exception:  # noqa: BLE001 - every failure, libyaml's included, is reported by the slow path instead
        return None
    if documents is None:
        return None
    source = Source(path=path, display=display)
    source.documents = [Document(index, data, None, (1, 1)) for index, data in enumerate(documents)]
    return source


class _Decline(Exception):
    """The fast path leaves this input to `parse`."""


class _FastBuilder:
    """Plain dicts, lists and scalars from libyaml's event stream, refusing what is unusual.

    ruamel's pure-Python composer and constructor cost most of loading a large file; links.yaml
    uses a small part of YAML, which is built here directly: untagged scalars typed by
    scalars.plain_value (ruamel's YAML 1.2 rules), mappings with string keys, lists, and
    aliases to finished nodes. Anything else (a tag, a %TAG directive, a duplicate or non-string
    key, a merge key `<<`, a timestamp, nesting beyond MAX_DEPTH, an integer beyond 64 bits, a
    reused anchor, more than MAX_EXPANDED_NODES values) declines, and `parse` decides.
    """

    def __init__(self, text: str):
        import _ruamel_yaml  # ruamel.yaml.clib: libyaml's parser, a dependency of ruamel.yaml's C loader

        self._text = text
        self._events = _ruamel_yaml.CParser(text)
        self._scalars: dict[str, Any] = {}  # plain scalar text -> its value: most repeat (keys, names)
        self._resolve = scalars.plain_value

    def documents(self) -> list[Any] | None:
        from ruamel.yaml import events as ev

        get = self._events.get_event
        try:
            found = []
            event = get()  # StreamStartEvent
            while True:
                event = get()
                if type(event) is ev.StreamEndEvent:
                    return found
                if event.version is not None or event.tags:  # DocumentStartEvent: %YAML, %TAG
                    return None
                found.append(self._document(get, ev))
        except (_Decline, scalars.Declined):
            return None
        finally:
            self._events.dispose()

    def _document(self, get: Any, ev: Any) -> Any:
        """One document's data; leaves the DocumentEndEvent consumed."""
        scalar_event, alias_event = ev.ScalarEvent, ev.AliasEvent
        mapping_start, sequence_start = ev.MappingStartEvent, ev.SequenceStartEvent
        scalars, resolve = self._scalars, self._resolve
        anchors: dict[str, Any] = {}
        open_ids: set[int] = set()  # collections not yet closed: an alias to one is recursive
        stack: list[Any] = []  # the open collections, innermost last
        keys: list[Any] = []  # per open collection: the mapping key awaiting its value, or _KEY
        nodes = 0
        aliased = False
        root: Any = None
        while True:
            event = get()
            kind = type(event)
            if kind is scalar_event:
                if event.tag is not None:
                    raise _Decline
                if event.implicit[0]:  # plain: resolved by its text
                    value = scalars.get(event.value, _KEY)
                    if value is _KEY:
                        value = scalars[event.value] = resolve(event.value)
                elif event.style in _BLOCK:
                    # libyaml and ruamel disagree on some block scalars (`|#c`, a first line
                    # indented less than a blank one before it); no setting is multi-line text.
                    raise _Decline
                else:  # quoted: a string whatever it says
                    value = event.value
                container = None
            elif kind is mapping_start or kind is sequence_start:
                if event.tag is not None:
                    raise _Decline
                value = container = {} if kind is mapping_start else []
            elif kind is alias_event:
                if event.anchor not in anchors or not self._whole_name(event.start_mark.index, "*", event.anchor):
                    raise _Decline  # undefined: the careful path names it
                value = anchors[event.anchor]
                if id(value) in open_ids:
                    raise _Decline  # inside its own anchor: recursive
                aliased = True
                container = None
            elif kind is ev.MappingEndEvent or kind is ev.SequenceEndEvent:
                open_ids.discard(id(stack.pop()))
                keys.pop()
                continue
            else:  # DocumentEndEvent: libyaml sends nothing else inside a document
                if aliased:
                    _check_expansion(root, "", (1, 1))  # a ConfigError declines, as any exception
                return root
            nodes += 1
            if nodes > MAX_EXPANDED_NODES or len(stack) > MAX_DEPTH:
                raise _Decline
            anchor = event.anchor if container is not None or kind is scalar_event else None
            if anchor is not None:
                if anchor in anchors or not self._whole_name(event.start_mark.index, "&", anchor):
                    raise _Decline  # reused (ruamel warns about it), or read differently
                anchors[anchor] = value
            if not stack:
                root = value
            else:
                parent = stack[-1]
                if type(parent) is list:
                    parent.append(value)
                elif keys[-1] is _KEY:  # this node is a key
                    if type(value) is not str or value in parent:
                        raise _Decline  # a non-string key (a merge key `<<` too) or a duplicate
                    keys[-1] = value
                else:
                    parent[keys[-1]] = value
                    keys[-1] = _KEY
            if container is not None:
                stack.append(container)
                keys.append(_KEY)
                open_ids.add(id(container))

    def _whole_name(self, index: int, indicator: str, name: str) -> bool:
        # libyaml ends an anchor's name at the first character not in [-_0-9A-Za-z], ruamel only
        # at a space or a flow indicator (`&x:a` is anchor 'x' to one, 'x:a' to the other).
        end = index + 1 + len(name)
        text = self._text
        return text.startswith(indicator + name, index) and (end == len(text) or text[end] in " \r\n,[]{}")



_BLOCK = ("|", ">")
_KEY = object()  # marks "the next node is a key" (and a cache miss)


def _depth_limited_scanner() -> type:
    """ruamel's scanner, refusing nesting beyond MAX_DEPTH as it reads it.

    Deep input must stop here: ruamel's parser recurses once per level, and its scanner slows
    down with every open '[' or '{', so thousands of them cost seconds before any limit is seen.
    """
    from ruamel.yaml.scanner import RoundTripScanner, ScannerError

    class DepthLimitedScanner(RoundTripScanner):
        def _check_depth(self) -> None:
            # indents holds one entry per open block collection (and one for the document).
            if self.flow_level + len(self.indents) > MAX_DEPTH:
                raise ScannerError(None, None, _TOO_DEEP, self.reader.get_mark())

        def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
            self._check_depth()
            super().fetch_flow_collection_start(TokenClass, to_push)

        def add_indent(self, column: int) -> bool:
            added = super().add_indent(column)
            if added:
                self._check_depth()
            return added

    return DepthLimitedScanner


def _checking_composer() -> type:
    """ruamel's composer, refusing where they stand an alias inside its own anchor and a key
    that is a list or mapping.

    Left to the constructor, such an alias silently becomes null in most places, and keys that
    are collections are hashed over and over (time grows threefold with each level of `? ? ? a`)
    or fail as unhashable. No key of links.yaml is anything but a plain value.
    """
    from ruamel.yaml.composer import Composer, ComposerError
    from ruamel.yaml.events import AliasEvent, CollectionStartEvent
    from ruamel.yaml.nodes import CollectionNode, MappingNode

    class CheckingComposer(Composer):
        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.parser.peek_event()
            target = self.anchors.get(event.anchor) if isinstance(event, AliasEvent) else None
            # A collection gets its end mark when it closes: without one, the alias is inside it.
            if target is not None and target.end_mark is None:
                raise ComposerError(
                    None, None, f"alias *{event.anchor} is inside its own anchor (a recursive structure)", event.start_mark
                )
            # The base class composes a mapping's key with index None, its value with the key.
            if isinstance(parent, MappingNode) and index is None:
                if isinstance(event, CollectionStartEvent) or isinstance(target, CollectionNode):
                    raise ComposerError(None, None, "a key must be a plain value, not a list or mapping", event.start_mark)
            return super().compose_node(parent, index)

    return CheckingComposer


def _reporting_constructor() -> type:
    """ruamel's constructor, reporting a value it cannot convert as a YAML error at its position.

    ruamel lets `!!int x`, `!!bool maybe`, `2001-02-30` or an integer of thousands of digits
    escape as a bare ValueError or KeyError. Integers beyond 64 bits are refused too: no setting
    takes one, and Python cannot even print one of thousands of digits (`0xfff…`) in a message.
    """
    from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor

    class ReportingConstructor(RoundTripConstructor):
        def construct_non_recursive_object(self, node: Any, tag: Any = None) -> Any:
            try:
                data = super().construct_non_recursive_object(node, tag)
            except (ValueError, OverflowError, KeyError, IndexError):  # IndexError: an empty `!!int`
                raise self._unreadable(node, tag, "") from None
            if isinstance(data, int) and data.bit_length() > 64:
                raise self._unreadable(node, tag, ": more than 64 bits")
            return data

        @staticmethod
        def _unreadable(node: Any, tag: Any, why: str) -> ConstructorError:
            kind = str(tag or node.tag).rsplit(":", 1)[-1]
            shown = "this value"
            if isinstance(node.value, str):
                shown = repr(node.value) if len(node.value) <= 40 else f"{node.value[:20]!r}… ({len(node.value)} characters)"
            return ConstructorError(None, None, f"cannot read {shown} as {kind}{why}", node.start_mark)

    return ReportingConstructor


def _to_plain(tree: Any, display: str, position: Position) -> Any:
    """Convert ruamel's tree to plain dict/list/scalars, refusing alias bombs and deep nesting."""
    _check_expansion(tree, display, position)
    return _plain(tree, 0, display, position)


def _check_expansion(tree: Any, display: str, position: Position) -> None:
    # Shared (aliased) nodes are counted once per use but computed once: linear in the text.
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(
                [Diagnostic("YAML alias refers to itself (recursive structure)").located(display, _start(node) or position)]
            )
        active.add(key)
        children = node.values() if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                break
        active.discard(key)
        sizes[key] = total
        return total

    try:
        total = size(tree)
    except RecursionError:
        raise _fail(display, f"YAML: {_TOO_DEEP}") from None
    if total > MAX_EXPANDED_NODES:
        raise ConfigError(
            [
                Diagnostic(
                    f"document expands to more than {MAX_EXPANDED_NODES} values through YAML aliases; refusing it"
                ).located(display, position)
            ]
        )


def _plain(node: Any, depth: int, display: str, position: Position) -> Any:
    from ruamel.yaml.scalarbool import ScalarBoolean
    if depth > MAX_DEPTH:
        raise ConfigError([Diagnostic(f"YAML: {_TOO_DEEP}").located(display, position)])
    if isinstance(node, dict):
        here = _start(node) or position
        return {_key(k): _plain(v, depth + 1, display, here) for k, v in node.items()}
    if isinstance(node, list):
        here = _start(node) or position
        return [_plain(v, depth + 1, display, here) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, ScalarBoolean):  # an anchored `&a true`: ruamel's int subclass
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime.date):
        # Unquoted dates are a YAML type of their own; keep them so type errors name them.
        return node
    return str(node)


def _key(key: Any) -> str:
    # Non-string keys (numbers, nulls, complex keys) become strings, so "unknown key" names them.
    if isinstance(key, str):
        return str(key)
    return "null" if key is None else str(key)


def _start(node: Any) -> Position | None:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return None
    return (lc.line + 1, lc.col + 1)


def locate_in_tree(tree: Any, path: tuple[str | int, ...], *, at_key: bool = False) -> Position | None:
    """The position of `path` inside a ruamel tree; the deepest existing parent if it is absent."""
    node = tree
    best = _start(tree)
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and part in node and lc is not None:
            where = lc.key(part) if (at_key and last) else lc.value(part)
            if where is not None:
                best = (where[0] + 1, where[1] + 1)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node) and lc is not None:
            where = lc.item(part)
            if where is not None:
                best = (where[0] + 1, where[1] + 1)
            node = node[part]
        else:
            break
        inner = _start(node)
        if inner is not None and not last:
            best = inner
    return best



def _fail(display: str, message: str) -> ConfigError:
    return ConfigError([Diagnostic(message, file=display)])
