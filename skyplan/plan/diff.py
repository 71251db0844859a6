"""Attribute-level differences (deepdiff), as AttributeChange items with readable paths."""

from __future__ import annotations

from typing import Any

from skyplan.plan.model import AttributeChange


def attribute_changes(before: dict[str, Any], after: dict[str, Any], force_new: frozenset[str] = frozenset()) -> list[AttributeChange]:
    """One change per top-level attribute that differs, sorted by name."""
    if before == after:
        return []
    from deepdiff import DeepDiff

    roots = DeepDiff(before, after, ignore_order=False).affected_root_keys
    return [
        AttributeChange(path=str(key), before=before.get(key), after=after.get(key), forces_replacement=key in force_new)
        for key in sorted(roots, key=str)
    ]


def nested_changes(expected: dict[str, Any], found: dict[str, Any]) -> list[AttributeChange]:
    """Every differing leaf, with a dotted path: 'peer of b in a.endpoint'."""
    if expected == found:
        return []
    from deepdiff import DeepDiff

    diff = DeepDiff(expected, found, ignore_order=True, view="tree")
    changes = []
    for report in diff.values():
        for level in report:
            path = _dotted(level.path(output_format="list"))
            before = None if _absent(level.t1) else level.t1
            after = None if _absent(level.t2) else level.t2
            changes.append(AttributeChange(path=path, before=before, after=after))
    return sorted(changes, key=lambda c: c.path)


def _absent(value: Any) -> bool:
    return type(value).__name__ == "NotPresent"


def _dotted(parts: list) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(whole resource)"
