"""`skyctl`: SkyShift's imperative link commands, as one-resource plans on skyplan's engine."""

from __future__ import annotations

import time

import click

from skyplan import __version__
from skyplan.cli.common import GuardedGroup, console, lock_timeout_option, variables_options

_ALIASES = {"links": "link", "clusters": "cluster"}

config_option = click.option(
    "--config",
    "config_file",
    envvar="SKYPLAN_CONFIG",
    metavar="FILE",
    help="The workspace's links.yaml (default: $SKYPLAN_CONFIG, else ./links.yaml if present, else this folder with default settings).",
)
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


def _source(config_file: str | None, var_items: tuple[str, ...], var_files: tuple[str, ...]):
    from skyplan.cli.common import collect_variables
    from skyplan.operations import SkyctlSource

    return SkyctlSource(config_file, collect_variables(var_items, var_files))


@create.command("link")
@click.argument("name")
@click.option("-s", "--source", required=True, help="The name of the source cluster.")
@click.option("-t", "--target", required=True, help="The name of the target cluster.")
@config_option
@variables_options
@lock_timeout_option
def create_link(name: str, source: str, target: str, config_file: str | None, var_items, var_files, lock_timeout: float) -> None:
    """Create link NAME between two clusters (a bidirectional peering)."""
    from skyplan import operations

    operations.create_link(_source(config_file, var_items, var_files), name, (source, target), console(), lock_timeout=lock_timeout)


@delete.command("link")
@click.argument("name")
@config_option
@variables_options
@lock_timeout_option
def delete_link(name: str, config_file: str | None, var_items, var_files, lock_timeout: float) -> None:
    """Delete link NAME (its peering goes when no other link joins the pair)."""
    from skyplan import operations

    operations.delete_link(_source(config_file, var_items, var_files), name, console(), lock_timeout=lock_timeout)


@create.command("cluster")
@click.argument("name")
@click.option(
    "--endpoint", default=None, metavar="HOST:PORT", help="Where peers reach this cluster; without one it is behind NAT and only dials out."
)
@click.option("--subnet", "subnets", multiple=True, metavar="CIDR", help="A network behind the cluster (repeatable).")
@click.option("--listen-port", type=click.IntRange(1, 65535), default=None, help="ListenPort, if not the provider's default.")
@click.option("--gateway", default=None, metavar="URL", help="The live WireGuard host: ssh://[user@]host[:port] or an ssh config Host alias.")
@click.option(
    "--public-key", default=None, metavar="KEY", help="An external peer, managed elsewhere: its WireGuard public key; nothing is generated for it."
)
@config_option
@variables_options
@lock_timeout_option
def create_cluster(
    name: str,
    endpoint: str | None,
    subnets: tuple[str, ...],
    listen_port: int | None,
    gateway: str | None,
    config_file: str | None,
    var_items,
    var_files,
    lock_timeout: float,
    **arguments,  # the other cluster arguments of links.yaml, by their names there (--public-key)
) -> None:
    """Register cluster NAME so links can join it."""
    from skyplan import operations

    source = _source(config_file, var_items, var_files)
    operations.create_cluster(
        source, name, endpoint, list(subnets), listen_port, console(), lock_timeout=lock_timeout, gateway=gateway, **arguments
    )


@delete.command("cluster")
@click.argument("name")
@config_option
@variables_options
@lock_timeout_option
def delete_cluster(name: str, config_file: str | None, var_items, var_files, lock_timeout: float) -> None:
    """Delete cluster NAME (no link may join it)."""
    from skyplan import operations

    operations.delete_cluster(_source(config_file, var_items, var_files), name, console(), lock_timeout=lock_timeout)


@get.command("link")
@click.argument("name", required=False)
@watch_option
@output_option
@config_option
@variables_options
def get_link(name: str | None, watch: bool, output: str, config_file: str | None, var_items, var_files) -> None:
    """Show link NAME, or all links: NAME SOURCE TARGET STATUS AGE."""
    from skyplan import operations

    source = _source(config_file, var_items, var_files)
    operations.get(source, "link", name, output, console(), watch=watch, every=WATCH_SECONDS, sleep=time.sleep)


@get.command("cluster")
@click.argument("name", required=False)
@watch_option
@output_option
@config_option
@variables_options
def get_cluster(name: str | None, watch: bool, output: str, config_file: str | None, var_items, var_files) -> None:
    """Show cluster NAME, or all clusters."""
    from skyplan import operations

    source = _source(config_file, var_items, var_files)
    operations.get(source, "cluster", name, output, console(), watch=watch, every=WATCH_SECONDS, sleep=time.sleep)


WATCH_SECONDS = 2.0
