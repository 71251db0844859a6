"""`skyplan state …` and `skyplan force-unlock`: inspecting and repairing recorded state."""

from __future__ import annotations

from pathlib import Path

import click

from skyplan.cli.common import GuardedGroup, VersionedCommand, lock_timeout_option

config_option = click.option("--config", "config_file", default="links.yaml", show_default=True, help="The workspace's links.yaml.")


@click.group("state", cls=GuardedGroup)
def state_group() -> None:
    """Inspect and edit the recorded state."""


def _store(config_file: str):
    from skyplan.runner import open_state

    store = open_state(Path(config_file), config_file)
    click.get_current_context().call_on_close(store.close)
    return store


@state_group.command("list")
@config_option
def state_list(config_file: str) -> None:
    """List the addresses the state records, sorted."""
    state = _store(config_file).read()
    for resource in state.resources if state else []:
        click.echo(resource.address)


@state_group.command("show")
@click.argument("address")
@config_option
def state_show(address: str, config_file: str) -> None:
    """Show one resource as the state records it (public values only)."""
    from skyplan.errors import StateError
    from skyplan.render.state_text import render_resource
    from skyplan.state.forget import parse_address

    parse_address(address)
    state = _store(config_file).read()
    resource = (state.by_address() if state else {}).get(address)
    if resource is None:
        raise StateError(f"no resource at address {address} in the state")
    click.echo(render_resource(resource), nl=False)


@state_group.command("rm")
@click.argument("addresses", nargs=-1, required=True, metavar="ADDR...")
@config_option
@lock_timeout_option
def state_rm(addresses: tuple[str, ...], config_file: str, lock_timeout: float) -> None:
    """Forget resources without destroying them; their files and keys stay.

    The state before the change is kept in the backup. If the configuration still declares a
    forgotten resource, the next apply creates it again, reusing its key file.
    """
    from skyplan.errors import StateError
    from skyplan.state.forget import forget, parse_address

    for address in addresses:
        parse_address(address)
    store = _store(config_file)
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
@click.argument("lock_id", metavar="ID")
@config_option
def force_unlock(lock_id: str, config_file: str) -> None:
    """Remove the lock ID left behind by a run that can no longer release it."""
    _store(config_file).unlock(lock_id)
    click.echo(f"skyplan state has been successfully unlocked! (lock {lock_id})")
