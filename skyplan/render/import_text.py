"""What `skyplan import` shows: the resources it adopts, what it cannot carry, links.yaml to be written."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skyplan.render.errors import one_line
from skyplan.render.style import PLAIN, Style

if TYPE_CHECKING:
    from pathlib import Path

    from skyplan.config.diagnostics import Diagnostic
    from skyplan.importing import ImportPreview


def _where(d: Diagnostic) -> str:
    if d.file is None:
        return ""
    return f"{d.file}:{d.line}: " if d.line is not None else f"{d.file}: "


def render_not_carried(skipped: list[Diagnostic]) -> list[str]:
    """Each thing the files hold that the configuration cannot say, by file and line."""
    ordered = sorted(skipped, key=lambda d: (d.file or "", d.line or 0, d.message))
    return [f"  {_where(d)}{one_line(d.message)}" for d in ordered]


def render_preview(preview: ImportPreview, style: Style = PLAIN) -> str:
    document = preview.response.document
    sources = {source.name: f"from {source.display}" for source in preview.sources}
    sources.update({host.name: f"from gateway {host.address}: its keys stay there" for host in preview.hosts})
    what = [f"{len(preview.sources)} file{'s' if len(preview.sources) != 1 else ''}"] if preview.sources or not preview.hosts else []
    if preview.hosts:
        what.append(f"{len(preview.hosts)} gateway{'s' if len(preview.hosts) != 1 else ''}")
    lines = [f"skyplan import adopts {' and '.join(what)}:", ""]
    for cluster in document.get("clusters", []):
        name = cluster["name"]
        origin = sources.get(name, "external peer: its keys and config stay where they are")
        lines.append(f"  {style('+', 'green')} cluster.{name}  ({one_line(origin)})")
    for link in document.get("links", []):
        lines.append(f"  {style('+', 'green')} link.{link['name']}  ({link['source']} <-> {link['target']})")
    skipped = preview.response.skipped
    lines.append("")
    if skipped:
        lines.append(style(f"Not carried or changed ({len(skipped)}):", "yellow", "bold"))
        lines.extend(render_not_carried(skipped))
    else:
        lines.append("Everything in the files is carried.")
    lines.append("")
    lines.append(f"{preview.out_display} as import writes it:")
    lines.extend(f"  {line}" if line else "" for line in preview.text.rstrip("\n").split("\n"))
    lines.append("")
    clusters, links = len(document.get("clusters", [])), len(document.get("links", []))
    lines.append(
        f"Import: {clusters} cluster{'s' if clusters != 1 else ''}, {links} link{'s' if links != 1 else ''}. "
        f"Nothing was written; run again with --auto-approve to write {one_line(preview.out_display)}, the state and the keys."
    )
    return "\n".join(lines) + "\n"


def render_written(preview: ImportPreview, serial: int, written: list[Path], style: Style = PLAIN) -> str:
    document = preview.response.document
    clusters, links = len(document.get("clusters", [])), len(document.get("links", []))
    return (
        style("Import complete!", "green", "bold")
        + f" {one_line(preview.out_display)}: {clusters} cluster{'s' if clusters != 1 else ''}, {links} link{'s' if links != 1 else ''};"
        f" the state records them (serial {serial}); {len(written)} key file{'s' if len(written) != 1 else ''} in the key store"
        + (f"; {len(preview.hosts)} gateway{'s' if len(preview.hosts) != 1 else ''} keep their own keys.\n" if preview.hosts else ".\n")
        + "Next: `skyplan plan` adds and replaces nothing; it updates each cluster whose config skyplan has not written\n"
        "yet (refresh finds no file of its own), and `skyplan apply` writes them, equivalent to the files imported.\n"
    )
