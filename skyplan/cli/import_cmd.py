"""`skyplan import`: adopt existing configuration files as links.yaml, state and keys."""

from __future__ import annotations

import click

from skyplan.cli.common import VersionedCommand, lock_timeout_option, out_style
from skyplan.cli.files import config_file


@click.command("import", cls=VersionedCommand)
@click.argument("confs", nargs=-1, metavar="[CONF]...")
@click.option("--gateway", "gateways", multiple=True, metavar="[NAME=]GATEWAY", help="A live WireGuard host to adopt over SSH (ssh://[user@]host[:port] or a Host alias); repeatable. Its key stays on it.")
@click.option("--interface", default=None, metavar="NAME", help="The WireGuard interface the gateways run (default: the CONF files' name, else wg0).")
@click.option("--ssh-config", default=None, metavar="FILE", help="The OpenSSH client config that reaches the gateways (default: ssh's own); links.yaml keeps it as provider.ssh.config.")
@click.option("--out", "out_file", default=None, metavar="FILE", help="The links.yaml to write (default: $SKYPLAN_CONFIG, else links.yaml); never over an existing file.")
@click.option("--address-pool", default=None, metavar="CIDR", help="The overlay network (default: inferred from the files' Address lines).")
@click.option("--auto-approve", is_flag=True, help="Write links.yaml, the state and the keys; without it, only show what would be written.")
@lock_timeout_option
def import_(
    confs: tuple[str, ...],
    gateways: tuple[str, ...],
    interface: str | None,
    ssh_config: str | None,
    out_file: str | None,
    address_pool: str | None,
    auto_approve: bool,
    lock_timeout: float,
) -> None:
    """Adopt existing interface configs (WireGuard: /etc/wireguard/*.conf), one per cluster, keeping keys and addresses.

    A cluster is named after its file (alpha.conf: alpha), or after the file's folder when every
    file has the same name (alpha/wg0.conf: alpha, interface wg0). A peering both files declare
    becomes a link; a peer no file holds the key of becomes an external peer. Shows what would be
    imported and what cannot be carried, per file and line; --auto-approve writes it.

    With --gateway, live hosts are read over SSH (the running interface, its config file) and
    become clusters with that `gateway`; their private and preshared keys never leave them.
    """
    import os

    from skyplan import importing
    from skyplan.render.import_text import render_preview, render_written

    if not confs and not gateways:
        raise click.UsageError("give CONF files, --gateway hosts, or both")
    out = config_file(out_file)
    settings: dict = {"address_pool": address_pool} if address_pool is not None else {}
    if interface is not None:
        settings["interface"] = interface
    if ssh_config is not None:
        # links.yaml names it relative to itself, as every path in it is.
        folder = os.path.dirname(os.path.abspath(out))
        settings["ssh"] = {"config": os.path.relpath(os.path.abspath(ssh_config), folder)}
    preview = importing.preview(list(confs), out, settings, list(gateways))
    if not auto_approve:
        click.echo(render_preview(preview, out_style()), nl=False)
        return
    serial, written = importing.write(preview, settings, lock_timeout)
    click.echo(render_preview(preview, out_style()).rsplit("\nImport: ", 1)[0] + "\n", nl=False)
    click.echo(render_written(preview, serial, written, out_style()), nl=False)
