"""The human plan: Terraform's layout, sorted by address, so plans diff well in review."""

from __future__ import annotations

from skyplan.plan.model import Action, AttributeChange, Drift, Plan, ResourceChange
# Every text of a plan is escaped: `show PLAN` reads one from a file anyone may have edited.
from skyplan.render.errors import escaped as _text
from skyplan.render.style import PLAIN, Style
from skyplan.render.values import KNOWN_AFTER_APPLY, literal

NO_CHANGES = "No changes. Links match the configuration."

_HEADLINE = {
    Action.CREATE: "will be created",
    Action.DELETE: "will be destroyed",
    Action.UPDATE: "will be updated in-place",
    Action.REPLACE: "must be replaced",
}
_COLOUR = {Action.CREATE: "green", Action.DELETE: "red", Action.UPDATE: "yellow", Action.REPLACE: "yellow", Action.NOOP: "bold"}


def render_plan(plan: Plan, style: Style = PLAIN, *, compact: bool = False) -> str:
    lines: list[str] = []
    if plan.drift:
        lines.append(style("Changed outside skyplan:", "bold"))
        lines.append("")
        for drift in plan.drift:
            lines.extend(_drift_block(drift, style))
            lines.append("")
    actionable = plan.actionable
    if not actionable:
        lines.extend(_note(note) for note in plan.notes)
        lines.append(style(NO_CHANGES, "green", "bold"))
        return "\n".join(lines) + "\n"
    if not compact:
        lines.append("skyplan will perform the following actions:")
        lines.append("")
    for change in actionable:
        if compact:
            symbol = change.action.value
            notes = [f"moved from {_text(change.previous_address)}"] if change.previous_address else []
            notes += [_text(change.reason)] if change.reason else []
            suffix = f"  ({'; '.join(notes)})" if notes else ""
            lines.append(f"{symbol:>3} {style(_text(change.address), _COLOUR[change.action])}{suffix}")
        elif change.action is Action.CREATE and not change.reason and not change.previous_address:
            lines.append(_create_text(change, style))
            lines.append("")
        else:
            lines.extend(_change_block(change, style))
            lines.append("")
    if compact:
        lines.append("")
    lines.extend(_note(note) for note in plan.notes)
    if plan.notes:
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_saved_note(plan_file: str, config_file: str | None, same_variables: bool, choices: list[str] = ()) -> str:
    """Where `plan --out` saved the plan and the command that applies it: with `config_file`
    when it is not the default one, and the choices (--destroy, --target…) it was made with."""
    command = " ".join(["skyplan apply", *choices, plan_file] + ([f"--config {config_file}"] if config_file else []))
    again = " (with the same --var and --var-file)" if same_variables else ""
    return f"\nSaved the plan to: {plan_file}\nTo perform exactly these actions, run: {command}{again}\n"


def _note(note: str) -> str:
    # A provider's warning (a gateway not reached) says so itself.
    return _text(note) if note.startswith("Warning: ") else f"Note: {_text(note)}"


def summary_line(plan: Plan) -> str:
    s = plan.summary
    return f"Plan: {s.add} to add, {s.change} to change, {s.destroy} to destroy."


def one_line(change: ResourceChange) -> str:
    """skyctl's view of a one-resource plan: `+ link.us-eu`, and why, when it finishes earlier work."""
    suffix = f"  ({_text(change.reason)})" if change.reason else ""
    return f"{change.action.value} {_text(change.address)}{suffix}"


def _change_block(change: ResourceChange, style: Style) -> list[str]:
    if change.action is Action.CREATE and not change.reason and not change.previous_address:
        return _create_block(change, style)
    symbol = change.action.value
    colour = _COLOUR[change.action]
    if change.action is Action.NOOP:
        # Only moved: Terraform's wording, and no symbol, since nothing else happens to it.
        lines = [f"  # {_text(change.previous_address)} has moved to {_text(change.address)}"]
    elif change.action_reason == "replace_by_request":
        lines = [f"  # {_text(change.address)} will be replaced, as requested"]
    else:
        lines = [f"  # {_text(change.address)} {_HEADLINE[change.action]}"]
        if change.previous_address:
            lines.append(f"  # (moved from {_text(change.previous_address)})")
        if change.reason:
            lines.append(f"  # ({_text(change.reason)})")
    if change.action is Action.REPLACE and change.action_reason == "replace_by_request" and change.previous_address:
        lines.append(f"  # (moved from {_text(change.previous_address)})")
    styled = style(symbol, colour)
    lines.append(f"{styled:>{3 + (len(styled) - len(symbol))}} {change.type} \"{_text(change.name)}\" {{")
    rows: list[tuple[str, str, str, str]] = []  # symbol, name, value text, trailing comment
    if change.action is Action.CREATE:
        for key, value in sorted({**(change.after or {}), **change.planned}.items()):
            if value is not None:
                rows.append(("+", _text(key), literal(value), ""))
        rows.extend(("+", _text(key), KNOWN_AFTER_APPLY, "") for key in change.after_unknown)
    elif change.action is Action.DELETE:
        for key, value in sorted((change.before or {}).items()):
            if value is not None:
                rows.append(("-", _text(key), f"{literal(value)} -> null", ""))
    else:
        shown = set()
        for item in change.attribute_changes:
            rows.append(_attribute_row(item))
            shown.add(item.path)
        if change.action is Action.REPLACE:
            for key in change.after_unknown:
                if key not in shown:
                    before = (change.before or {}).get(key)
                    text = f"{literal(before)} -> {KNOWN_AFTER_APPLY}" if before is not None else KNOWN_AFTER_APPLY
                    rows.append(("~", _text(key), text, ""))
        hidden = len((set(change.after or {}) | set(change.planned)) - shown)
        if hidden:
            rows.append(("", f"# ({hidden} unchanged attribute{'s' if hidden != 1 else ''} hidden)", "", ""))
    width = max((len(name) for sym, name, _, _ in rows if sym), default=0)
    rows.sort(key=_row_order)
    symbols = _row_symbols(style)
    for sym, name, text, comment in rows:
        if not sym:
            lines.append(f"        {name}")
            continue
        lines.append(f"      {symbols[sym]} {name.ljust(width)} = {text}{comment}")
    lines.append("    }")
    return lines


def _create_block(change: ResourceChange, style: Style) -> list[str]:
    return _create_text(change, style).split("\n")


def _create_text(change: ResourceChange, style: Style) -> str:
    # The block of most plans' changes (a fleet's first apply shows 110,000 of them), as one
    # text made by one %-format, without the general block's bookkeeping: the same lines (tests
    # compare the two). Blocks of one shape (the same attributes with a value, the same unknown
    # ones) share their format.
    after = change.after or {}
    planned = change.planned
    values = {**after, **planned} if planned else after
    # Most blocks have no attribute without a value: their keys, as they are, are the shape.
    shown = tuple(values) if None not in values.values() else tuple([key for key, value in values.items() if value is not None])
    unknown = change.after_unknown
    shape = (style.colour, shown, tuple(unknown)) if unknown else (style.colour, shown)
    layout = _LAYOUTS.get(shape)
    if layout is None:
        layout = _create_layout(style, shown, tuple(unknown))
        if len(_LAYOUTS) < 1024:  # shapes a hostile plan file makes up are not all kept
            _LAYOUTS[shape] = layout
    form, keys = layout
    address, name = change.address, change.name
    if not address.isprintable():
        address = _text(address)
    if not name.isprintable():
        name = _text(name)
    return form % (address, change.type, name, *[literal(values[key]) for key in keys])


def _create_layout(style: Style, shown: tuple[str, ...], unknown: tuple[str, ...]) -> tuple[str, list[str]]:
    """A create block's %-format (its address, type and name, then a value for each attribute
    shown), and the attributes whose values it takes, in order; an attribute known after apply
    is text in the format."""
    plus = _row_symbols(style)["+"]
    rows: list[tuple[str, str | None]] = [(_key_text(key), key) for key in sorted(shown)]
    rows += [(_key_text(key), None) for key in unknown]
    rows.sort(key=_first)  # stable, by the name shown, as the general block orders its rows
    width = max((len(name) for name, _ in rows), default=0)
    styled = style("+", "green")
    head = f"{styled:>{3 + (len(styled) - 1)}} ".replace("%", "%%")
    texts = [f"      {plus} {name.ljust(width)} = ".replace("%", "%%") + ("%s" if key is not None else KNOWN_AFTER_APPLY) for name, key in rows]
    form = "\n".join(["  # %s will be created", f'{head}%s "%s" {{', *texts, "    }"])
    return form, [key for _, key in rows if key is not None]


_LAYOUTS: dict[tuple, tuple[str, list[str]]] = {}


def _first(row: tuple[str, str]) -> str:
    return row[0]


_KEY_TEXTS: dict[str, str] = {}


def _key_text(key: str) -> str:
    # Attribute names repeat across every block of a plan: escaped once each.
    found = _KEY_TEXTS.get(key)
    if found is None:
        found = _text(key)
        if len(_KEY_TEXTS) < 1024:  # names a hostile plan file makes up are not all kept
            _KEY_TEXTS[key] = found
    return found


def _row_order(row: tuple[str, str, str, str]) -> tuple[bool, str]:
    return (row[0] == "", row[1])  # attributes by name, then the "hidden" note


def _row_symbols(style: Style) -> dict[str, str]:
    # Styled once per style, not once per row: a plan of a large fleet has 100,000 blocks.
    found = _SYMBOLS.get(style.colour)
    if found is None:
        found = _SYMBOLS[style.colour] = {sym: style(sym, colour) for sym, colour in _ROW_COLOUR.items()}
    return found


_ROW_COLOUR = {"+": "green", "-": "red", "~": "yellow"}
_SYMBOLS: dict[bool, dict[str, str]] = {}


def _attribute_row(item: AttributeChange) -> tuple[str, str, str, str]:
    comment = " # forces replacement" if item.forces_replacement else ""
    if item.before is None and item.after is not None:
        return ("+", _text(item.path), literal(item.after), comment)
    if item.after is None and item.before is not None:
        return ("-", _text(item.path), f"{literal(item.before)} -> null", comment)
    return ("~", _text(item.path), f"{literal(item.before)} -> {literal(item.after)}", comment)


def _drift_block(drift: Drift, style: Style) -> list[str]:
    lines = [f"  # {_text(drift.address)}: {_text(drift.reason)}" if drift.reason else f"  # {_text(drift.address)} has changed"]
    lines.append(f"  {style('~', 'yellow')} {drift.type} \"{_text(drift.name)}\" {{")
    rows = [_attribute_row(c) for c in drift.changes]
    width = max((len(r[1]) for r in rows), default=0)
    symbols = _row_symbols(style)
    for sym, name, text, _ in rows:
        lines.append(f"      {symbols[sym]} {name.ljust(width)} = {text}")
    lines.append("    }")
    return lines
