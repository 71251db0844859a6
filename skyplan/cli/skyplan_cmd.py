"""`skyplan`: validate, plan, apply, destroy and inspect a links.yaml workspace."""

from __future__ import annotations

import json
from pathlib import Path

import click

from skyplan import __version__
from skyplan.cli.common import GuardedGroup, confirm, lock_timeout_option, out_style, stdin_is_terminal
from skyplan.errors import ApplyError, SkyplanError

DEFAULT_FILE = "links.yaml"
file_argument = click.argument("file", required=False, default=DEFAULT_FILE, metavar="[FILE]")


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="skyplan", message="%(prog)s %(version)s")
def main() -> None:
    """Declarative WireGuard links between clusters: validate, plan, apply."""


@main.command()
@file_argument
def validate(file: str) -> None:
    """Check FILE (default links.yaml) and report every problem at once."""
    from skyplan.config.loader import load_config
    from skyplan.render.errors import render_diagnostics

    loaded = load_config(Path(file), display=file)
    if loaded.warnings:
        click.echo(render_diagnostics(loaded.warnings, out_style()), nl=False, err=True)
    click.echo(out_style()("Success! The configuration is valid.", "green", "bold"))


@main.command()
@file_argument
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (Terraform's shape).")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes, 0 when none.")
@click.option("--no-refresh", is_flag=True, help="Do not read configs and keys back to detect drift.")
@click.option("--compact", is_flag=True, help="One line per resource, for large plans.")
@lock_timeout_option
def plan(file: str, as_json: bool, detailed_exitcode: bool, no_refresh: bool, compact: bool, lock_timeout: float) -> None:
    """Show what apply would do to make the links match FILE."""
    from skyplan.render.plan_json import render_plan_json
    from skyplan.render.plan_text import render_plan
    from skyplan.runner import make_plan, open_workspace

    ws = open_workspace(Path(file), display=file)
    with ws.locked("plan", lock_timeout):
        prior = ws.store.read()
        result = make_plan(ws, prior, desired=ws.desired(), do_refresh=not no_refresh)
    if as_json:
        click.echo(render_plan_json(result, ws.provider_name), nl=False)
    else:
        click.echo(render_plan(result, out_style(), compact=compact), nl=False)
    if detailed_exitcode and result.has_changes:
        raise click.exceptions.Exit(2)


@main.command()
@file_argument
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON (needs --auto-approve).")
@click.option("--compact", is_flag=True, help="One line per resource in the plan shown.")
@lock_timeout_option
def apply(file: str, auto_approve: bool, as_json: bool, compact: bool, lock_timeout: float) -> None:
    """Plan, ask for confirmation, and apply the changes that make the links match FILE."""
    _run_apply(file, mode="normal", auto_approve=auto_approve, as_json=as_json, compact=compact, lock_timeout=lock_timeout)


@main.command()
@file_argument
@click.option("--auto-approve", is_flag=True, help="Destroy without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON (needs --auto-approve).")
@lock_timeout_option
def destroy(file: str, auto_approve: bool, as_json: bool, lock_timeout: float) -> None:
    """Remove everything the state holds for FILE (links created with skyctl stay)."""
    _run_apply(file, mode="destroy", auto_approve=auto_approve, as_json=as_json, compact=False, lock_timeout=lock_timeout)


def _run_apply(file: str, *, mode: str, auto_approve: bool, as_json: bool, compact: bool, lock_timeout: float) -> None:
    from skyplan.apply import apply_plan
    from skyplan.render.apply_text import render_outcome, render_outcome_json, render_result
    from skyplan.render.plan_text import render_plan
    from skyplan.runner import make_plan, open_workspace

    if as_json and not auto_approve:
        raise SkyplanError("--json needs --auto-approve: there is no prompt in JSON mode")
    if not auto_approve and not stdin_is_terminal():
        raise SkyplanError(f"{'destroy' if mode == 'destroy' else 'apply'} needs confirmation, but input is not a terminal; pass --auto-approve to apply without it")
    ws = open_workspace(Path(file), display=file)
    style = out_style()
    with ws.locked("destroy" if mode == "destroy" else "apply", lock_timeout) as lock:
        prior = ws.store.read()
        desired = {} if mode == "destroy" else ws.desired()
        result = make_plan(ws, prior, desired=desired, mode=mode)
        if not as_json:
            click.echo(render_plan(result, style, compact=compact), nl=False)
        if not result.has_changes:
            if as_json:
                click.echo(render_outcome_json(result, None, ws.provider_name), nl=False)
            return
        if not auto_approve:
            question = "Do you really want to destroy all resources?" if mode == "destroy" else "Do you want to perform these actions?"
            if not confirm(question, "skyplan will perform the actions described above."):
                raise SkyplanError(f"{'Destroy' if mode == 'destroy' else 'Apply'} cancelled.")

        def progress(change, outcome) -> None:
            if not as_json:
                click.echo(render_result(change, outcome, style))

        outcome = apply_plan(result, prior, ws.store, ws.provider, lock=lock, on_result=progress)
    if as_json:
        click.echo(render_outcome_json(result, outcome, ws.provider_name), nl=False)
    else:
        click.echo("\n" + render_outcome(result, outcome, style), nl=False)
    if outcome.failed:
        raise ApplyError(f"{len(outcome.failed)} resource{'s' if len(outcome.failed) != 1 else ''} failed; the state records what succeeded. Fix the cause and apply again.")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_file", default=DEFAULT_FILE, show_default=True, help="The workspace's links.yaml.")
def show(as_json: bool, config_file: str) -> None:
    """Show the current state."""
    from skyplan.render.state_text import render_state, state_document
    from skyplan.runner import open_workspace

    ws = open_workspace(Path(config_file), display=config_file)
    state = ws.store.read()
    if as_json:
        click.echo(json.dumps(state_document(state), indent=2))
    else:
        click.echo(render_state(state), nl=False)


# Defined apart; their heavy imports happen only when they run.
from skyplan.cli.authoring_cmd import fmt, schema  # noqa: E402

main.add_command(fmt)
main.add_command(schema)
