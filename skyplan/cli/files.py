"""Which links.yaml a command works on: FILE, else $SKYPLAN_CONFIG, else ./links.yaml.

skyctl finds its workspace the same way (`--config` there, as kubectl-style tools do), so a
shell that exports SKYPLAN_CONFIG points both CLIs at one workspace.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from skyplan.errors import SkyplanError

DEFAULT_FILE = "links.yaml"
ENV_VAR = "SKYPLAN_CONFIG"


def config_file(given: str | None) -> str:
    """FILE as the user gave it, else $SKYPLAN_CONFIG, else links.yaml (an empty variable is unset)."""
    return given or os.environ.get(ENV_VAR) or DEFAULT_FILE


def named_config_file(given: str | None) -> tuple[str, bool]:
    """The file, and whether the user named it (argument or variable) rather than the default."""
    chosen = config_file(given)
    return chosen, bool(given or os.environ.get(ENV_VAR))


def existing_named_file(given: str | None) -> str:
    """For commands that read only the state: a file the user named must exist.

    Without one, the state of the current folder is meant, with or without a links.yaml there
    (skyctl makes workspaces without one). A typo in a named file would otherwise show an empty
    state as if it were the truth.
    """
    chosen, named = named_config_file(given)
    if named and not Path(chosen).exists():
        raise SkyplanError(f"{chosen}: no such file")
    return chosen


def config_alias(command):
    """The `--config FILE` that state commands took before FILE was an argument; kept, unlisted."""
    return click.option("--config", "config_alias", metavar="FILE", hidden=True, help="Deprecated: give FILE as the first argument.")(command)


def leading_file(args: tuple[str, ...], *, names: tuple[str, ...], alias: str | None) -> tuple[str | None, tuple[str, ...]]:
    """Split `[FILE] NAME…` for a command that takes exactly len(names) values after FILE.

    FILE comes first, as in `plan [FILE]`; it is recognised by the count of arguments, so any
    file name works. `alias` is the deprecated --config value.
    """
    if len(args) == len(names) + 1:
        file, rest = args[0], args[1:]
    elif len(args) == len(names):
        file, rest = None, args
    elif len(args) < len(names):
        raise click.UsageError(f"Missing argument '{names[len(args)]}'.")
    else:
        raise click.UsageError(f"Got unexpected extra argument ({args[len(names) + 1]})")
    return one_file(file, alias), rest


def leading_file_of_addresses(args: tuple[str, ...], *, alias: str | None) -> tuple[str | None, tuple[str, ...]]:
    """Split `[FILE] ADDR…`: the first of two or more arguments is FILE unless it reads as an address.

    An address is `cluster.NAME` or `link.NAME`; a file whose name looks like one is given as
    `./link.yaml`.
    """
    from skyplan.state.model import address_problem

    if len(args) >= 2 and address_problem(args[0]) is not None:
        return one_file(args[0], alias), args[1:]
    return one_file(None, alias), args


def one_file(file: str | None, alias: str | None) -> str | None:
    """FILE, or the deprecated --config value; both only when they agree."""
    if file is not None and alias is not None and file != alias:
        raise click.UsageError(f"FILE {file} and --config {alias} name different files; give FILE only.")
    return file if file is not None else alias
