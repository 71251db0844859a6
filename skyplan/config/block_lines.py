"""Reading links.yaml's usual layout, block mappings and lists one entry a line, with one regex.

Nearly every links.yaml is written in a small part of YAML: `key: value` lines, `- ` items, and
one-line `[a, b]` lists of plain or simply quoted values, in block mappings and lists indented by
spaces. Going through libyaml's events costs a Python object per event (three a link); a line is
matched here by one regular expression, in C, and only the indentation is followed in Python.

Anything else declines (returns None), and `source.parse_fast` reads the text through libyaml
instead: a tag, anchor or alias, a flow mapping, a quoted key, a character a plain value does not
usually hold (`#`, `,`, `[`, a space), an escape, a value going on over several lines, a second
document, odd indentation, a duplicate or non-string key. What it accepts it reads exactly as
`source.parse` does (tests/config/test_block_lines.py and test_fast_parity.py compare them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from skyplan.config.scalars import plain_value

# Only printable characters and '\n': no tab, no CR, and none of what libyaml and ruamel read
# differently (NEL, LS and PS, YAML 1.1's line breaks; a BOM); no surrogate. (Written as the
# characters refused: the class of those allowed takes milliseconds to compile, at every start.)
_UNUSUAL_CHARACTER = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")

# A plain value: characters that never start or end a YAML token here. It may not start with an
# indicator ('-' only before a digit or '.', as in -1 or -.5) nor end with ':' (a key); no space
# inside, so ' #' cannot hide in it and it never goes on to the next line.
_PLAIN = r"(?:[A-Za-z0-9_./+~]|-(?=[0-9.]))[A-Za-z0-9_./+~=@:-]*+(?<!:)"
# In a [flow] list a ':' may end a plain value where libyaml and ruamel disagree: none there.
_FLOW_ITEM = r"(?:(?:[A-Za-z0-9_./+~]|-(?=[0-9.]))[A-Za-z0-9_./+~=@-]*+|\"[^\"\\,\n]*+\"|'[^',\n]*+')"
_VALUE = rf"{_PLAIN}|\"[^\"\\\n]*+\"|'[^'\n]*+'|\[ *+(?:{_FLOW_ITEM}(?: *+, *+{_FLOW_ITEM})*+)? *+\]"
# A key is a plain word well within YAML's 1024 characters for a key on one line.
_KEY = r"[A-Za-z_][A-Za-z0-9_-]{0,127}"
# A comment follows a space (or starts its line): in `a#b`, '#' is part of the value.
_END = r" *+(?:(?<![^ \n])#[^\n]*+)?\n"
# Every line matches, once: groups indent, `---`, `- `, key, value, item (a value after `- `),
# and `bad`, the whole line when it is none of the above.
_LINE = re.compile(
    rf"( *+)(?:(---)(?= |\n)|(- )?(?:({_KEY}):(?: ++({_VALUE}))?|({_VALUE})))?{_END}|([^\n]*+)\n"
)
_CHUNK = 64 * 1024  # characters matched at a time
_MAX_NESTING = 32  # far below source.MAX_DEPTH; links.yaml nests four deep
_MISSING = object()
_NOT_PLAIN = "\"'["  # the first character of a quoted value or a flow list


class _Decline(Exception):
    """This text is left to libyaml."""


def read(text: str, max_values: int) -> Any | None:
    """The data of `text`, one document of the layout above, or None to have libyaml read it.

    More than `max_values` values decline, so that the careful path counts them. A plain value
    that scalars.plain_value refuses raises its error: libyaml's path would refuse it too.
    """
    if not text.endswith("\n"):
        text += "\n"
    if _UNUSUAL_CHARACTER.search(text):
        return None
    # At most two values a line (a list item's mapping and one value) and the items of its lists.
    if 2 * text.count("\n") + text.count(",") + 2 * text.count("[") > max_values:
        return None
    try:
        return _Reader().document(_chunks(text))
    except _Decline:
        return None


def _chunks(text: str) -> Iterator[list[tuple[str, ...]]]:
    """The lines of `text`, matched a few thousand at a time: a 100,000-link file has 330,000,
    and holding all their tuples at once would add tens of MB to the peak."""
    findall, start, size = _LINE.findall, 0, len(text)
    while start < size:
        end = text.find("\n", start + _CHUNK) + 1 or size
        yield findall(text, start, end)
        start = end


class _Reader:
    def __init__(self) -> None:
        self._resolve = plain_value
        self._scalars: dict[str, Any] = {}  # plain text -> its value: names and ends repeat

    def document(self, chunks: Iterator[list[tuple[str, ...]]]) -> Any:
        scalars, resolve, value_of = self._scalars, self._resolve, self._value
        root: dict[str, Any] = {}
        # The open collections around the current one, outermost first, with their indents.
        enclosing: list[tuple[int, Any]] = []
        current: Any = root
        indent = 0  # of `current`'s keys or items
        in_list = False
        pending: Any = _MISSING  # a key of `current` ending its line: its value comes below
        opened = started = False  # `---` seen; a key seen
        for lines in chunks:
            for spaces, marker, dash, key, value, item, bad in lines:
                if bad:
                    raise _Decline
                if not key and not item:
                    if marker:
                        if spaces or started or opened:  # a second document, or `---` as a value
                            raise _Decline
                        opened = True
                    continue  # blank, or a comment
                started = True
                column = len(spaces)
                if pending is not _MISSING:
                    # `key:` alone on its line: a list if `- ` follows at its indent or deeper, a
                    # mapping if keys follow deeper, else null.
                    child: Any = [] if dash and column >= indent else {} if not dash and column > indent else None
                    current[pending] = child
                    pending = _MISSING
                    if child is not None:
                        if len(enclosing) >= _MAX_NESTING:
                            raise _Decline
                        enclosing.append((indent, current))
                        current, indent, in_list = child, column, type(child) is list
                if column != indent:
                    while indent > column:
                        indent, current = enclosing.pop()
                    if indent != column:
                        raise _Decline  # indented unlike any open collection
                    in_list = type(current) is list
                if in_list:
                    if not dash:
                        # A list written at its key's own indent ends where that mapping's next key is.
                        if not enclosing or enclosing[-1][0] != column:
                            raise _Decline
                        indent, current = enclosing.pop()
                        in_list = False
                    elif key:  # `- key: ...`: a mapping whose keys stand two columns in
                        if len(enclosing) >= _MAX_NESTING:
                            raise _Decline
                        entry: dict[str, Any] = {}
                        current.append(entry)
                        enclosing.append((indent, current))
                        current, indent, in_list = entry, column + 2, False
                    else:
                        current.append(value_of(item))
                        continue
                elif dash:
                    raise _Decline  # an item where a mapping's key belongs
                if not key:
                    raise _Decline  # a value alone where a key belongs (or a document of one value)
                name = scalars.get(key, _MISSING)
                if name is _MISSING:
                    name = scalars[key] = resolve(key)
                if type(name) is not str or name in current:
                    raise _Decline  # `true:`, `null:`; a duplicate key
                if not value:
                    pending = name
                elif value[0] in _NOT_PLAIN:
                    current[name] = value_of(value)
                else:  # inline for the common case, a plain value (most values of a file)
                    plain = scalars.get(value, _MISSING)
                    if plain is _MISSING:
                        plain = scalars[value] = resolve(value)
                    current[name] = plain
        if not started:
            raise _Decline  # no document, or one without a mapping
        if pending is not _MISSING:
            current[pending] = None
        return root

    def _value(self, text: str) -> Any:
        first = text[0]
        if first == '"' or first == "'":
            return text[1:-1]  # no escapes, no line breaks: the text between the quotes
        if first == "[":
            inner = text[1:-1].strip()
            return [self._value(part.strip()) for part in inner.split(",")] if inner else []
        value = self._scalars.get(text, _MISSING)
        if value is _MISSING:
            value = self._scalars[text] = self._resolve(text)
        return value
