"""`skyplan`: validate, plan, apply, destroy and inspect a links.yaml workspace."""

from __future__ import annotations

import json
from pathlib import Path

import click

from skyplan import __version__
from skyplan.cli.common import (
    GuardedGroup,
    collect_variables,
    console,
    err_style,
    lock_timeout_option,
    out_style,
    replace_option,
    report_error,
    targeting_options,
    variables_options,
)
from skyplan.cli.files import DEFAULT_FILE, config_alias, config_file
from skyplan.errors import SkyplanError

# Default: $SKYPLAN_CONFIG, else links.yaml (skyplan/cli/files.py); resolved in each command.
file_argument = click.argument("file", required=False, metavar="[FILE]")


@click.group(name="skyplan", cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="skyplan", message="%(prog)s %(version)s")
def main() -> None:
    """Declarative WireGuard links between clusters: validate, plan, apply.

    FILE, where a command takes one, defaults to $SKYPLAN_CONFIG, else links.yaml in the
    current folder. Colour appears only on a terminal, never with --no-color or NO_COLOR.
    """


@main.command()
@click.argument("files", nargs=-1, metavar="[FILE]...")
@variables_options
def validate(files: tuple[str, ...], var_items: tuple[str, ...], var_files: tuple[str, ...]) -> None:
    """Check each FILE (default links.yaml) and report every problem at once.

    Several files (as pre-commit passes them) are checked one by one, in sorted order; each
    valid one gets its own success line, and the exit status is 1 when any file has an error.
    """
    from skyplan.config.loader import load_config
    from skyplan.render.errors import render_diagnostics

    variables = collect_variables(var_items, var_files)
    chosen = sorted(set(files)) if files else [config_file(None)]
    failed = False
    for file in chosen:
        try:
            loaded = load_config(Path(file), display=file, variables=variables)
        except SkyplanError as exc:
            report_error(exc, file)
            failed = True
            continue
        if loaded.diagnostics:
            click.echo(render_diagnostics(loaded.diagnostics, err_style()), nl=False, err=True)
        prefix = f"{file}: " if len(chosen) > 1 else ""
        click.echo(prefix + out_style()("Success! The configuration is valid.", "green", "bold"))
    if failed:
        raise click.exceptions.Exit(1)


@main.command()
@file_argument
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (Terraform's shape).")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none.")
@click.option("--no-refresh", is_flag=True, help="Do not read configs and keys back to detect drift.")
@click.option("--compact", is_flag=True, help="One line per resource, for large plans.")
@click.option("--out", "out_file", metavar="PLAN", help="Save the plan to apply it later with `skyplan apply PLAN`.")
@click.option("--destroy", is_flag=True, help="Plan what `skyplan destroy` would remove (with --out: a destroy plan to apply).")
@targeting_options
@replace_option
@variables_options
@lock_timeout_option
def plan(
    file: str | None,
    as_json: bool,
    detailed_exitcode: bool,
    no_refresh: bool,
    compact: bool,
    out_file: str | None,
    destroy: bool,
    targets: tuple[str, ...],
    excludes: tuple[str, ...],
    replace: tuple[str, ...],
    var_items: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: float,
) -> None:
    """Show what apply would do to make the links match FILE.

    With --destroy, what `skyplan destroy` would remove instead: everything FILE manages, while
    skyctl's links stay, and so do the clusters they join.
    """
    from skyplan import operations

    selection = operations.Selection("destroy" if destroy else "normal", targets, excludes, replace)
    result = operations.plan(
        _source(file, var_items, var_files), selection, console(), refresh=not no_refresh, out=out_file,
        var_files=var_files, as_json=as_json, compact=compact, lock_timeout=lock_timeout,
    )
    if detailed_exitcode and result.has_changes:
        raise click.exceptions.Exit(2)


@main.command()
@click.argument("file", required=False, metavar="[FILE|PLAN]")
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON (needs --auto-approve).")
@click.option("--compact", is_flag=True, help="One line per resource in the plan shown.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when changes were applied, 0 when there was nothing to do.")
@click.option(
    "--config", "plan_config", default=None, metavar="FILE",
    help="With a saved PLAN: the configuration it was made from (default: $SKYPLAN_CONFIG, else links.yaml).",
)
@click.option(
    "--destroy", is_flag=True,
    help="With a saved PLAN made by `plan --destroy`: say so again (a saved plan's choices are restated).",
)
@targeting_options
@replace_option
@variables_options
@lock_timeout_option
def apply(
    file: str | None,
    auto_approve: bool,
    as_json: bool,
    compact: bool,
    detailed_exitcode: bool,
    plan_config: str | None,
    destroy: bool,
    targets: tuple[str, ...],
    excludes: tuple[str, ...],
    replace: tuple[str, ...],
    var_items: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: float,
) -> None:
    """Plan, ask for confirmation, and apply the changes that make the links match FILE.

    Given a plan saved with `skyplan plan --out PLAN`, apply exactly that plan, without asking.
    It is refused unless planning again from the configuration it was made from (--config), the
    state and the choices it was made with (--destroy, --target, --exclude, --replace, given
    again here) gives exactly the saved plan: an altered plan, a changed configuration or a
    changed state stops it before anything is done.
    """
    from skyplan import operations
    from skyplan.plan.saved import looks_like_plan_file

    file = config_file(file)
    if looks_like_plan_file(Path(file)):
        source = _source(plan_config, var_items, var_files)
        selection = operations.Selection("destroy" if destroy else "normal", targets, excludes, replace)
        changed = operations.apply_saved(file, source, selection, console(), as_json=as_json, lock_timeout=lock_timeout)
    else:
        if plan_config is not None:
            raise SkyplanError("--config names the configuration of a saved plan; give a configuration as FILE")
        if destroy:
            raise SkyplanError("--destroy with apply is for a saved destroy plan; to destroy, run skyplan destroy")
        selection = operations.Selection("normal", targets, excludes, replace)
        changed = operations.apply(
            _source(file, var_items, var_files), selection, console(), auto_approve=auto_approve, as_json=as_json,
            compact=compact, lock_timeout=lock_timeout,
        )
    if detailed_exitcode and changed:
        raise click.exceptions.Exit(2)


def _source(file: str | None, var_items: tuple[str, ...], var_files: tuple[str, ...]):
    """The configuration FILE names (default: $SKYPLAN_CONFIG, else links.yaml), with its variables."""
    from skyplan.operations import ConfigSource

    chosen = config_file(file)
    return ConfigSource(chosen, collect_variables(var_items, var_files), default=chosen == DEFAULT_FILE)


@main.command()
@file_argument
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON (needs --auto-approve).")
@targeting_options
@replace_option
@variables_options
@lock_timeout_option
def destroy(
    file: str | None,
    auto_approve: bool,
    as_json: bool,
    targets: tuple[str, ...],
    excludes: tuple[str, ...],
    replace: tuple[str, ...],
    var_items: tuple[str, ...],
    var_files: tuple[str, ...],
    lock_timeout: float,
) -> None:
    """Remove everything FILE manages; skyctl's links stay, and so do the clusters they join."""
    from skyplan import operations

    selection = operations.Selection("destroy", targets, excludes, replace)
    operations.apply(
        _source(file, var_items, var_files), selection, console(), auto_approve=auto_approve, as_json=as_json,
        lock_timeout=lock_timeout,
    )


@main.command()
@click.argument("file", required=False, metavar="[FILE|PLAN]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_alias
def show(file: str | None, as_json: bool, config_alias: str | None) -> None:
    """Show a saved PLAN, or the current state of FILE's workspace."""
    from skyplan.cli.files import one_file
    from skyplan.cli.state_cmd import store_of
    from skyplan.render.state_text import render_state, state_document
    from skyplan.workspace import configured_provider_name

    if file is not None and _names_a_plan(Path(file)):
        from skyplan.plan.saved import read_plan_file
        from skyplan.render.plan_json import render_plan_json
        from skyplan.render.plan_text import render_plan

        saved = read_plan_file(Path(file))
        if as_json:
            click.echo(render_plan_json(saved.plan, saved.provider_name, timestamp=saved.created), nl=False)
        else:
            click.echo(render_plan(saved.plan, out_style()), nl=False)
        return
    from skyplan.cli.files import existing_named_file

    chosen = existing_named_file(one_file(file, config_alias))
    state = store_of(chosen).read()
    if as_json:
        click.echo(json.dumps(state_document(state, configured_provider_name(Path(chosen))), indent=2))
    else:
        click.echo(render_state(state), nl=False)


def _names_a_plan(path: Path) -> bool:
    """A plan file, or JSON that is meant as one: reading it as a plan gives the right error."""
    from skyplan.plan.saved import looks_like_plan_file

    if looks_like_plan_file(path):
        return True
    if path.suffix in (".yaml", ".yml", ".j2"):
        return False  # a configuration, even one written as a flow mapping
    try:
        with path.open("rb") as handle:
            return handle.read(64).lstrip().startswith(b"{")
    except OSError:
        return False


# Commands defined in their own modules; their heavy imports happen only when they run.
from skyplan.cli.authoring_cmd import fmt, schema  # noqa: E402
from skyplan.cli.graph_cmd import graph  # noqa: E402
from skyplan.cli.import_cmd import import_  # noqa: E402
from skyplan.cli.state_cmd import force_unlock, state_group  # noqa: E402

for _command in (fmt, schema, state_group, force_unlock, graph, import_):
    main.add_command(_command)
