"""`skyctl`: SkyShift's imperative link commands, as one-resource plans on skyplan's engine."""

from __future__ import annotations

import time

import click

from skyplan import __version__
from skyplan.cli.common import GuardedGroup, lock_timeout_option

_ALIASES = {"links": "link", "clusters": "cluster"}

def _remember(ctx: click.Context, param: click.Parameter, value):
    ctx.meta[f"skyctl.{param.name}"] = value


def config_option(command):
    """--config FILE, and the variables of a templated one; kept aside for `_workspace`."""
    command = click.option(
        "--var-file", "var_files", multiple=True, metavar="FILE", expose_value=False, callback=_remember,
        help="Variables of a templated configuration (repeatable).",
    )(command)
    command = click.option(
        "--var", "var_items", multiple=True, metavar="KEY=VALUE", expose_value=False, callback=_remember,
        help="A variable of a templated configuration (repeatable).",
    )(command)
    return click.option(
        "--config",
        "config_file",
        envvar="SKYPLAN_CONFIG",
        metavar="FILE",
        help="The workspace's links.yaml (default: $SKYPLAN_CONFIG, else ./links.yaml if present, else this folder with default settings).",
    )(command)
output_option = click.option(
    "-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True, help="Output format."
)
watch_option = click.option("-w", "--watch", is_flag=True, help="Keep watching; redraw when a status changes. Ctrl-C stops.")


class ResourceGroup(GuardedGroup):
    """`link`/`links` and `cluster`/`clusters` name the same commands."""

    def get_command(self, ctx, name):
        return super().get_command(ctx, _ALIASES.get(name, name))

    def resolve_command(self, ctx, args):
        _, command, rest = super().resolve_command(ctx, args)
        return command.name if command else None, command, rest


@click.group(name="skyctl", cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="skyctl", message="%(prog)s %(version)s")
def main() -> None:
    """Create, get and delete links between clusters (SkyShift's skyctl).

    Every change is a one-resource plan applied through skyplan's engine, lock and state.
    """


@main.group(cls=ResourceGroup)
def create() -> None:
    """Create a link or a cluster."""


@main.group(cls=ResourceGroup)
def get() -> None:
    """Show links or clusters and their status."""


@main.group(cls=ResourceGroup)
def delete() -> None:
    """Delete a link or a cluster."""


def _workspace(config_file: str | None):
    from skyplan.cli.common import close_when_done, collect_variables
    from skyplan.runner import open_skyctl_workspace

    meta = click.get_current_context().meta
    variables = collect_variables(meta.get("skyctl.var_items", ()), meta.get("skyctl.var_files", ()))
    return close_when_done(open_skyctl_workspace(config_file, variables))


def _report(done, created: str) -> None:
    from skyplan.errors import ApplyError
    from skyplan.render.plan_text import one_line

    for change in done.plan.actionable:
        click.echo(one_line(change))
    for note in done.notes:
        click.echo(f"Note: {note}")
    if done.outcome.failed:
        failure = done.outcome.failed[0]
        raise ApplyError(f"{failure.address}: {failure.error}")
    click.echo(created)


@create.command("link")
@click.argument("name")
@click.option("-s", "--source", required=True, help="The name of the source cluster.")
@click.option("-t", "--target", required=True, help="The name of the target cluster.")
@config_option
@lock_timeout_option
def create_link(name: str, source: str, target: str, config_file: str | None, lock_timeout: float) -> None:
    """Create link NAME between two clusters (a bidirectional peering)."""
    from skyplan.imperative import create_link as run

    done = run(_workspace(config_file), name, source, target, lock_timeout)
    _report(done, f"Created link {name}.")


@delete.command("link")
@click.argument("name")
@config_option
@lock_timeout_option
def delete_link(name: str, config_file: str | None, lock_timeout: float) -> None:
    """Delete link NAME (its peering goes when no other link joins the pair)."""
    from skyplan.imperative import delete_link as run

    done = run(_workspace(config_file), name, lock_timeout)
    _report(done, f"Deleted link {name}.")


@create.command("cluster")
@click.argument("name")
@click.option("--endpoint", required=True, metavar="HOST:PORT", help="Where peers reach this cluster.")
@click.option("--subnet", "subnets", multiple=True, metavar="CIDR", help="A network behind the cluster (repeatable).")
@click.option("--listen-port", type=click.IntRange(1, 65535), default=None, help="ListenPort, if not the provider's default.")
@config_option
@lock_timeout_option
def create_cluster(name: str, endpoint: str, subnets: tuple[str, ...], listen_port: int | None, config_file: str | None, lock_timeout: float) -> None:
    """Register cluster NAME so links can join it."""
    from skyplan.imperative import create_cluster as run

    done = run(_workspace(config_file), name, endpoint, list(subnets), listen_port, lock_timeout)
    _report(done, f"Created cluster {name}.")


@delete.command("cluster")
@click.argument("name")
@config_option
@lock_timeout_option
def delete_cluster(name: str, config_file: str | None, lock_timeout: float) -> None:
    """Delete cluster NAME (no link may join it)."""
    from skyplan.imperative import delete_cluster as run

    done = run(_workspace(config_file), name, lock_timeout)
    _report(done, f"Deleted cluster {name}.")


@get.command("link")
@click.argument("name", required=False)
@watch_option
@output_option
@config_option
def get_link(name: str | None, watch: bool, output: str, config_file: str | None) -> None:
    """Show link NAME, or all links: NAME SOURCE TARGET STATUS AGE."""
    _get("link", name, watch, output, config_file)


@get.command("cluster")
@click.argument("name", required=False)
@watch_option
@output_option
@config_option
def get_cluster(name: str | None, watch: bool, output: str, config_file: str | None) -> None:
    """Show cluster NAME, or all clusters."""
    _get("cluster", name, watch, output, config_file)


WATCH_SECONDS = 2.0


def _get(kind: str, name: str | None, watch: bool, output: str, config_file: str | None) -> None:
    ws = _workspace(config_file)
    shown = None
    try:
        while True:
            text, key = _snapshot(ws, kind, name, output)
            if key != shown:
                if shown is not None:
                    click.echo("")
                click.echo(text, nl=False)
                shown = key
            if not watch:
                return
            time.sleep(WATCH_SECONDS)
    except KeyboardInterrupt:
        return  # Ctrl-C ends a watch; that is success, not an error


def _snapshot(ws, kind: str, name: str | None, output: str) -> tuple[str, object]:
    """The text to show, and what a redraw depends on (not AGE, which changes every second)."""
    from skyplan.errors import SkyplanError
    from skyplan.imperative import observe
    from skyplan.render import objects

    state = ws.read_state()
    resources = [r for r in (state.resources if state else []) if r.type == kind and (name is None or r.name == name)]
    if name is not None and not resources:
        raise SkyplanError(f"{kind.capitalize()} '{name}' not found.")
    phases = observe(ws, state, resources)
    key = tuple((r.address, r.ends if r.type == "link" else None, phases[r.address][0]) for r in resources)
    display = type(ws.provider).display_spec.get(kind, objects.NO_DISPLAY)
    if output != "table":
        build = objects.link_object if kind == "link" else objects.cluster_object
        items = [build(r, *phases[r.address], display=display) for r in resources]
        return objects.render_objects(items, output, kind.capitalize(), single=name is not None), key
    if not resources:
        return f"No {kind}s found.\n", key
    row = objects.link_row if kind == "link" else objects.cluster_row
    columns = objects.link_columns(display) if kind == "link" else objects.cluster_columns(display)
    return objects.table(columns, [row(r, phases[r.address][0], display=display) for r in resources]), key
