"""`skyplan fmt` and `skyplan schema`: help for writing links.yaml by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from skyplan.cli.common import VersionedCommand, err_style, out_style, report_error
from skyplan.cli.files import config_file
from skyplan.errors import SkyplanError


@click.command("fmt", cls=VersionedCommand)
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a FILE is not in the canonical layout.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the changes as a unified diff.")
def fmt(files: tuple[str, ...], check: bool, show_diff: bool) -> None:
    """Rewrite each FILE (default links.yaml) in the canonical layout, keeping its comments.

    Keys in a fixed order, two-space indentation, lists of mappings in block style, short lists
    of values in flow style ([a, b]). Prints each FILE that changed (or would change), in sorted
    order. FILE - reads standard input and writes the result to standard output.

    Exit status: 0 when every FILE is canonical or was rewritten; 1 when a FILE has an error (the
    others are still formatted), and with --check when a FILE would change (1, as black, ruff and
    prettier do, so any CI step fails on it).
    """
    chosen = sorted(set(files)) if files else [config_file(None)]
    if "-" in chosen and len(chosen) > 1:
        raise click.UsageError("FILE - (standard input) cannot be formatted together with other files.")
    failed = would_change = False
    for file in chosen:
        try:
            would_change |= _format_one(file, check=check, show_diff=show_diff)
        except SkyplanError as exc:
            report_error(exc, "<stdin>" if file == "-" else file)
            failed = True
    if failed or (check and would_change):
        raise click.exceptions.Exit(1)


def _format_one(file: str, *, check: bool, show_diff: bool) -> bool:
    """Format one file (or stdin for -); say whether it changed or would change."""
    from skyplan.atomic import write_atomic
    from skyplan.config.fmt import format_text
    from skyplan.config.source import read_text
    from skyplan.render.diff_text import render_diff

    display = "<stdin>" if file == "-" else file
    before = sys.stdin.read() if file == "-" else read_text(Path(file), display)
    after = format_text(before, display=display, provider_fields=_provider_fields)
    changed = after != before
    if file == "-" and not (check or show_diff):
        click.echo(after, nl=False)
    elif changed:
        if file != "-":
            click.echo(file)
        if show_diff:
            click.echo(render_diff(before, after, display, out_style()), nl=False)
        if not check and file != "-":
            target = Path(file).resolve()  # through a symlink, to the file itself
            write_atomic(target, after.encode("utf-8"), mode=target.stat().st_mode & 0o7777)
    return changed


@click.command("schema", cls=VersionedCommand)
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of links.yaml, for editors and CI.

    It describes one document: the skyplan document, or a SkyShift manifest (kind: Link or
    Cluster), including the settings of every installed provider. Save it with
    `skyplan schema > links.schema.json`, then make links.yaml start with
    `# yaml-language-server: $schema=links.schema.json`. That comment covers only the document
    it is in: repeat it after each `---`, or map the schema to the file name in the editor's
    settings (yaml.schemas), which covers every document.
    """
    from skyplan.config.diagnostics import Diagnostic
    from skyplan.config.schema import installed_settings_models, links_schema, render_schema
    from skyplan.render.errors import render_diagnostics

    models, problems = installed_settings_models()
    if problems:
        warnings = [Diagnostic(problem, severity="warning") for problem in problems]
        click.echo(render_diagnostics(warnings, err_style()), nl=False, err=True)
    click.echo(render_schema(links_schema(models)), nl=False)


def _provider_fields(name: str) -> tuple[str, ...] | None:
    """The settings of provider `name` in model order, or None when it is not installed."""
    from skyplan.errors import ProviderError
    from skyplan.sdk import provider_class

    try:
        return tuple(provider_class(name).settings_model.model_fields)
    except ProviderError:
        return None
