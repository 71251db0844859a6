"""`skyplan state …` and `skyplan force-unlock`: inspecting and repairing recorded state.

Each takes the workspace's FILE first, as `plan [FILE]` does (default: $SKYPLAN_CONFIG, else
links.yaml); `--config FILE`, their old spelling, still works but is no longer listed.
"""

from __future__ import annotations

from pathlib import Path

import click

from skyplan.cli.common import GuardedGroup, VersionedCommand, lock_timeout_option
from skyplan.cli.files import config_alias, existing_named_file, leading_file, leading_file_of_addresses, one_file
from skyplan.render.errors import one_line


@click.group("state", cls=GuardedGroup)
def state_group() -> None:
    """Inspect and edit the recorded state of FILE's workspace."""


def store_of(file: str | None):
    """The state store of FILE's workspace, closed when the command ends."""
    from skyplan.workspace import open_state

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
        # Escaped: a name in a shared state may hold line breaks or terminal escape sequences.
        click.echo(one_line(resource.address))


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
        click.echo(f"Removed {one_line(address)}")
    count = len(set(addresses))
    click.echo(f"Successfully removed {count} resource instance{'s' if count != 1 else ''}.")


@state_group.command("mv")
@click.argument("args", nargs=-1, metavar="[FILE] FROM TO")
@config_alias
@lock_timeout_option
def state_mv(args: tuple[str, ...], config_alias: str | None, lock_timeout: float) -> None:
    """Rename a resource in the state; its key file and generated config follow it.

    Its key, address and peerings are kept. Rename it in the configuration too (or write a
    `moved` entry there instead, which a plan shows and apply carries out).
    """
    from skyplan import operations
    from skyplan.cli.common import console
    from skyplan.cli.files import config_file

    file, (source, destination) = leading_file(args, names=("FROM", "TO"), alias=config_alias)
    where = operations.ConfigSource(config_file(file), resources=False)
    operations.move_state(where, source, destination, console(), lock_timeout=lock_timeout)


@state_group.command("migrate")
@click.argument("file", required=False, default=None, metavar="[FILE]")
@config_alias
@click.option(
    "--from",
    "source_url",
    metavar="local|URL",
    help="Where the state is now: local, or a postgresql:// URL. Default: the local state when FILE names "
    "another backend, else where the last migration took it.",
)
@click.option("--auto-approve", is_flag=True, help="Migrate without asking for confirmation.")
@lock_timeout_option
def state_migrate(file: str | None, config_alias: str | None, source_url: str | None, auto_approve: bool, lock_timeout: float) -> None:
    """Move the state into the backend FILE now names (local or PostgreSQL), lineage and serial kept."""
    from skyplan.cli.common import confirm, stdin_is_terminal
    from skyplan.errors import SkyplanError
    from skyplan.state import migrate as migration

    if not auto_approve and not stdin_is_terminal():
        raise SkyplanError("state migrate needs confirmation, but input is not a terminal; pass --auto-approve to migrate without it")
    from skyplan.cli.files import config_file

    path = config_file(one_file(file, config_alias))
    ws, source, retire = _migration_ends(path, source_url)
    click.get_current_context().call_on_close(ws.store.close)
    click.get_current_context().call_on_close(source.close)

    def approve(state, existing) -> bool:
        if auto_approve:
            return True
        count = len(state.resources)
        return confirm(
            "Do you want to copy the existing state to the new backend?",
            f"The state (serial {state.serial}, {count} resource{'s' if count != 1 else ''}) moves from "
            f"{source.describe()} to {ws.store.describe()}.",
        )

    done = migration.migrate(source, ws.store, lock_timeout=lock_timeout, approve=approve, retire=retire)
    assert ws.backend is not None
    if ws.backend.type == "local":
        migration.forget_migration(ws.paths.data)
    else:
        migration.record_migration(ws.paths.data, ws.backend.type, ws.backend.location, ws.backend.workspace)
    state = done.state
    if done.already_there:
        click.echo(f"{ws.store.describe()} already holds this state (serial {state.serial}); nothing was copied.")
    else:
        click.echo(
            f"Successfully migrated the state (lineage {state.lineage}, serial {state.serial}) "
            f"from {source.describe()} to {ws.store.describe()}."
        )
    if not _is_local(source):
        click.echo(f"The state in {source.describe()} was left as it is; remove it once no one uses it.")


def _is_local(store) -> bool:
    from skyplan.state.local import FileStateStore

    return isinstance(store, FileStateStore)


def _migration_ends(path: str, source_url: str | None):
    """The workspace (whose store is the destination), the source store, and how to retire it."""
    from skyplan.errors import StateError
    from skyplan.state import migrate as migration
    from skyplan.state.local import FileStateStore
    from skyplan.state.urls import display_url
    from skyplan.workspace import open_workspace

    ws = open_workspace(Path(path), display=path, resources=False)
    data = ws.paths.data
    record = migration.MigrationRecord.read(data)
    if source_url is None:
        if not _is_local(ws.store):
            source_url = "local"
        elif record is not None:
            source_url = record.location  # without a password: libpq's PGPASSWORD or ~/.pgpass supply it
        else:
            ws.store.close()
            raise StateError(
                f"the state is already in the local backend that {path} names, and no earlier migration is "
                "recorded here; say where the state is with --from postgresql://…"
            )
    if source_url == "local":
        return ws, FileStateStore(data), lambda: migration.retire_local(data)
    if not source_url.startswith(("postgresql://", "postgres://")):
        ws.store.close()
        raise StateError(f"--from {display_url(source_url)}: write local, or a postgresql:// URL")
    from skyplan.state.postgres import PostgresStateStore

    # The workspace name the state had there: recorded by the migration that took it there.
    if record is not None and record.location == display_url(source_url):
        workspace = record.workspace
    else:
        workspace = ws.loaded.config.backend.workspace if ws.loaded is not None else "default"
    return ws, PostgresStateStore(source_url, workspace), lambda: None


@click.command("force-unlock", cls=VersionedCommand)
@click.argument("args", nargs=-1, metavar="[FILE] ID")
@config_alias
def force_unlock(args: tuple[str, ...], config_alias: str | None) -> None:
    """Remove the lock ID left behind by a run that can no longer release it."""
    file, (lock_id,) = leading_file(args, names=("ID",), alias=config_alias)
    store_of(file).unlock(lock_id)
    click.echo(f"skyplan state has been successfully unlocked! (lock {lock_id})")
