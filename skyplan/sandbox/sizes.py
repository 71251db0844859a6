"""Size checks made before a template step that could build a huge value in one C-level step.

Time limits are checked between steps, but `'x' * 10**9`, `'%999999999d' % 1` or printing a
list of a million references to one long string is a single step that fills memory before any
check could run; so these are estimated from their operands first.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import Any

from jinja2.runtime import Namespace

from skyplan.sandbox import INT_BITS, LimitExceeded, Limits
from skyplan.sandbox.budget import tick


def too_long(what: str, size: int, limit: int, unit: str = "characters") -> LimitExceeded:
    return LimitExceeded(f"{what} would be {size} {unit} long; the limit is {limit}")


def check_value(value: Any, limits: Limits) -> Any:
    """A value built by an operator, filter or call: refused if longer than the limits."""
    if isinstance(value, str):
        if len(value) > limits.output_chars:
            raise too_long("a string", len(value), limits.output_chars)
    elif isinstance(value, (list, tuple, dict, set, frozenset)):
        if len(value) > limits.items:
            raise too_long("a collection", len(value), limits.items, "items")
    elif isinstance(value, int) and value.bit_length() > INT_BITS:
        raise LimitExceeded(f"an integer of more than {INT_BITS} bits")
    return value


_CONTAINERS = (list, tuple, dict, set, frozenset, Namespace)


def check_printable(value: Any, limits: Limits, what: str = "printing a value") -> None:
    """Refuse a value whose text would pass the output limit, before it is printed (or compared).

    Printing a list of a million references to one long list is a single C-level step that would
    fill memory; comparing or sorting two such lists takes hours in C, past any time limit. Both
    cost about the length of the text, so that is estimated first: a walk of the value that
    stops as soon as it is too long.
    """
    if isinstance(value, str):
        if len(value) > limits.output_chars:
            raise too_long("a string", len(value), limits.output_chars)
        return
    if not isinstance(value, _CONTAINERS):
        return
    limit = limits.output_chars
    total = 0
    # Iterators of the containers being walked, and their ids: a list that holds itself prints
    # as `[...]` there, so it is not walked again.
    pending: list[Iterator[Any]] = [iter((value,))]
    walking: list[int] = [0]
    on_path: set[int] = set()
    steps = 0
    while pending:
        for item in pending[-1]:
            steps += 1
            if not steps & 0xFFFF:
                tick()  # a walk of millions of items must not outlast the time limit
            children: Any = None
            if isinstance(item, str):
                total += len(item) + 2
            elif isinstance(item, (list, tuple, set, frozenset)):
                total += 2 + 2 * len(item)
                children = _unmeasured(item)
            elif isinstance(item, dict):
                total += 2 + 4 * len(item)
                children = _unmeasured([*item.keys(), *item.values()]) if total <= limit else None
            elif isinstance(item, Namespace):
                attrs = object.__getattribute__(item, "_Namespace__attrs")
                total += 16 + 4 * len(attrs)
                children = _unmeasured([*attrs.keys(), *attrs.values()]) if total <= limit else None
            else:
                total += 1
            if isinstance(children, int):
                total += children
                children = None
            if total > limit:
                raise too_long(what, total, limit)
            if children is not None and id(item) not in on_path:
                pending.append(iter(children))
                walking.append(id(item))
                on_path.add(id(item))
                break  # walk into it; the rest of this container comes after
        else:
            pending.pop()
            on_path.discard(walking.pop())


_SCALARS = frozenset({int, float, bool, type(None)})


def _unmeasured(items: Any) -> Any:
    """The items still to walk; or, when none is a collection, the length of their strings.

    Counting item types runs at C speed: a flat list of a million numbers or names needs no walk.
    """
    kinds = set(map(type, items))
    if kinds == {str}:
        return sum(map(len, items))
    if not kinds - _SCALARS:
        return 0
    if not kinds - _SCALARS - {str}:
        return sum(len(item) for item in items if type(item) is str)
    return items


def check_compare(left: Any, right: Any, limits: Limits) -> None:
    """`==`, `<`, `in`…: one C-level step that walks both sides when both are collections."""
    if isinstance(left, _CONTAINERS) and isinstance(right, _CONTAINERS):
        check_printable(left, limits, "a value compared")
        check_printable(right, limits, "a value compared")


def _length(value: Any) -> int | None:
    try:
        return len(value)
    except TypeError:
        return None


def _int_argument(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_power(base: Any, exponent: Any) -> None:
    base, exponent = _int_argument(base), _int_argument(exponent)
    if base is None or exponent is None or exponent <= 0 or abs(base) <= 1:
        return
    if (base.bit_length() - 1) * exponent > INT_BITS or exponent > INT_BITS:
        raise LimitExceeded(f"an integer of more than {INT_BITS} bits (a power)")


def check_product(left: Any, right: Any, limits: Limits) -> None:
    a, b = _int_argument(left), _int_argument(right)
    if a is not None and b is not None:
        if a.bit_length() + b.bit_length() > INT_BITS + 1:
            raise LimitExceeded(f"an integer of more than {INT_BITS} bits (a product)")
        return
    for sequence, times in ((left, b), (right, a)):
        if times is not None and isinstance(sequence, (str, list, tuple)):
            limit = limits.output_chars if isinstance(sequence, str) else limits.items
            unit = "characters" if isinstance(sequence, str) else "items"
            if len(sequence) * times > limit:
                raise too_long(f"a repeated {type(sequence).__name__}", len(sequence) * times, limit, unit)


def check_sum(left: Any, right: Any, limits: Limits) -> None:
    if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        limit, unit = (limits.output_chars, "characters") if isinstance(left, str) else (limits.items, "items")
        if len(left) + len(right) > limit:
            raise too_long("a sum", len(left) + len(right), limit, unit)


# A printf conversion: its width and precision are the numbers (or `*`) that pad in C.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def check_printf(fmt: Any, arguments: Any, limits: Limits) -> None:
    if not isinstance(fmt, str):
        return
    for match in _PRINTF.finditer(fmt):
        for number in match.groups():
            if number == "*":
                raise LimitExceeded("a '*' width or precision in a % format is not allowed in templates")
            if number is not None and int(number) > limits.output_chars:
                raise too_long("a formatted field", int(number), limits.output_chars)
    check_printable(arguments, limits)


def check_format_string(fmt: str, limits: Limits) -> None:
    """str.format: refuse widths past the limit and widths taken from arguments."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format itself reports the malformed string
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise LimitExceeded("a nested '{…}' format spec is not allowed in templates")
        for digits in re.findall(r"\d+", spec):
            if int(digits) > limits.output_chars:
                raise too_long("a formatted field", int(digits), limits.output_chars)


def check_join(separator: Any, items: Any, limits: Limits) -> None:
    count = _length(items)
    if count is None or not isinstance(separator, str):
        return
    size = len(separator) * max(count - 1, 0)
    if size > limits.output_chars:
        raise too_long("a joined string", size, limits.output_chars)
    check_printable(items, limits)


def check_replace(text: Any, old: Any, new: Any, count: Any, limits: Limits) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    hits = text.count(old)
    if _int_argument(count) is not None and count >= 0:
        hits = min(hits, count)
    size = len(text) + hits * (len(new) - len(old))
    if size > limits.output_chars:
        raise too_long("a replaced string", size, limits.output_chars)


# Filters whose arguments pad or repeat in one C-level step: checked before they run.
def check_filter(name: str, args: tuple, kwargs: dict, limits: Limits) -> None:
    def argument(index: int, keyword: str, default: Any = None) -> Any:
        if keyword in kwargs:
            return kwargs[keyword]
        return args[index] if len(args) > index else default

    value = args[0] if args else None
    if isinstance(value, str) and name in _ONE_ITEM_PER_CHARACTER and len(value) > limits.items:
        raise too_long(f"a list made by |{name} of a string", len(value), limits.items, "items")
    if name == "center":
        width = _int_argument(argument(1, "width"))
        if width is not None and width > limits.output_chars:
            raise too_long("a centred string", width, limits.output_chars)
    elif name == "indent":
        width = argument(1, "width", 4)
        lines = (value.count("\n") + 1) if isinstance(value, str) else 1
        pad = len(width) if isinstance(width, str) else (_int_argument(width) or 0)
        if pad * lines > limits.output_chars:
            raise too_long("an indented string", pad * lines, limits.output_chars)
    elif name == "wordwrap":
        wrapstring = argument(3, "wrapstring")
        size = len(value) * (len(wrapstring) + 1) if isinstance(value, str) and isinstance(wrapstring, str) else 0
        if size > limits.output_chars:
            raise too_long("a wrapped string", size, limits.output_chars)
    elif name == "replace":
        check_replace(value, argument(1, "old"), argument(2, "new"), argument(3, "count"), limits)
    elif name == "join":
        check_join(argument(1, "d", ""), value, limits)
    elif name == "format":
        check_printf(value, args[1:] or kwargs, limits)
    elif name in ("batch", "slice"):
        count = _int_argument(argument(1, "linecount" if name == "batch" else "slices"))
        if count is not None and count > limits.items:
            raise too_long(f"a {name}", count, limits.items, "items")
    elif name == "tojson":
        indent = _int_argument(argument(1, "indent"))
        if indent is not None and indent > 1000:
            raise LimitExceeded("a tojson indent of more than 1000")
    if name not in _STRUCTURAL_FILTERS and value is not None:
        # Turned into text, or sorted: either costs about the length of its text.
        check_printable(value, limits, f"printed, the value given to |{name}")


# Filters that neither turn their input into text nor compare its items: their input is not
# measured (that would cost a walk of every list for every `|length`).
_STRUCTURAL_FILTERS = frozenset(
    "abs attr batch bool count d default first float int items last length list map "
    "random reject rejectattr reverse round select selectattr slice sum unique".split()
)
# Filters that make a list of the characters of a string given to them.
_ONE_ITEM_PER_CHARACTER = frozenset(
    "batch dictsort groupby join list map reject rejectattr select selectattr slice sort unique".split()
)

# Methods of str whose integer arguments are widths that pad in C.
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def check_method_call(function: Any, args: tuple, kwargs: dict, limits: Limits) -> None:
    owner = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "")
    if isinstance(owner, str):
        if name in _PADDING_METHODS:
            for value in (*args, *kwargs.values()):
                number = _int_argument(value) or 0
                size = number * (owner.count("\t") + 1) if name == "expandtabs" else number
                if size > limits.output_chars:
                    raise too_long(f"str.{name}", size, limits.output_chars)
        elif name == "join" and args:
            check_join(owner, args[0], limits)
        elif name == "replace" and len(args) >= 2:
            check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1, limits)
        elif name in ("split", "rsplit", "splitlines"):
            separator = args[0] if args and name != "splitlines" else kwargs.get("sep")
            if isinstance(separator, str) and separator:
                pieces = owner.count(separator) + 1
            else:  # at most one piece per run of white space or line break
                pieces = sum(owner.count(c) for c in " \t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029") + 1
            if pieces > limits.items:
                raise too_long(f"the list made by str.{name}", pieces, limits.items, "items")
    elif isinstance(owner, (list, dict, set)) and name in ("extend", "update"):
        grow = sum(_length(value) or 0 for value in args)
        if len(owner) + grow > limits.items:
            raise too_long("a collection", len(owner) + grow, limits.items, "items")
