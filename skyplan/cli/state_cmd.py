"""`skyplan state …` and `skyplan force-unlock`: inspecting and repairing recorded state.

Each takes the workspace's FILE first, as `plan [FILE]` does (default: $SKYPLAN_CONFIG, else
links.yaml); `--config FILE`, their old spelling, still works but is no longer listed.
"""

from __future__ import annotations

from pathlib import Path

import click

from skyplan.cli.common import GuardedGroup, VersionedCommand, lock_timeout_option
from skyplan.cli.files import config_alias, existing_named_file, leading_file, leading_file_of_addresses, one_file


@click.group("state", cls=GuardedGroup)
def state_group() -> None:
    """Inspect and edit the recorded state of FILE's workspace."""


def store_of(file: str | None):
    """The state store of FILE's workspace, closed when the command ends."""
    from skyplan.runner import open_state

    chosen = existing_named_file(file)
    store = open_state(Path(chosen), chosen)
    click.get_current_context().call_on_close(store.close)
    return store


@state_group.command("list")
@click.argument("file", required=False, metavar="[FILE]")
@config_alias
def state_list(file: str | None, config_alias: str | None) -> None:
    """List the addresses the state records, sorted."""
    state = store_of(one_file(file, config_alias)).read()
    for resource in state.resources if state else []:
        click.echo(resource.address)


@state_group.command("show")
@click.argument("args", nargs=-1, metavar="[FILE] ADDR")
@config_alias
def state_show(args: tuple[str, ...], config_alias: str | None) -> None:
    """Show one resource as the state records it (public values only)."""
    from skyplan.errors import StateError
    from skyplan.render.state_text import render_resource
    from skyplan.state.forget import parse_address

    file, (address,) = leading_file(args, names=("ADDR",), alias=config_alias)
    parse_address(address)
    state = store_of(file).read()
    resource = (state.by_address() if state else {}).get(address)
    if resource is None:
        raise StateError(f"no resource at address {address} in the state")
    click.echo(render_resource(resource), nl=False)


@state_group.command("rm")
@click.argument("args", nargs=-1, required=True, metavar="[FILE] ADDR...")
@config_alias
@lock_timeout_option
def state_rm(args: tuple[str, ...], config_alias: str | None, lock_timeout: float) -> None:
    """Forget resources without destroying them; their files and keys stay.

    The state before the change is kept in the backup. If the configuration still declares a
    forgotten resource, the next apply creates it again, reusing its key file. FILE, when given,
    is the first argument that is not an address (write ./cluster.yaml for a file named so).
    """
    from skyplan.errors import StateError
    from skyplan.state.forget import forget, parse_address

    file, addresses = leading_file_of_addresses(args, alias=config_alias)
    for address in addresses:
        parse_address(address)
    store = store_of(file)
    info = store.lock("state rm", lock_timeout)
    try:
        state = store.read()
        if state is None:
            raise StateError("there is no state yet; nothing to remove")
        store.write(forget(state, sorted(set(addresses))))
    finally:
        store.unlock(info.id)
    for address in sorted(set(addresses)):
        click.echo(f"Removed {address}")
    count = len(set(addresses))
    click.echo(f"Successfully removed {count} resource instance{'s' if count != 1 else ''}.")


@click.command("force-unlock", cls=VersionedCommand)
@click.argument("args", nargs=-1, metavar="[FILE] ID")
@config_alias
def force_unlock(args: tuple[str, ...], config_alias: str | None) -> None:
    """Remove the lock ID left behind by a run that can no longer release it."""
    file, (lock_id,) = leading_file(args, names=("ID",), alias=config_alias)
    store_of(file).unlock(lock_id)
    click.echo(f"skyplan state has been successfully unlocked! (lock {lock_id})")
