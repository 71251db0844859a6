"""--no-color, --version and --help on every command of both CLIs, and colour only on a terminal.

The commands are found by walking the CLIs, so a command added later is checked too.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import click
import pytest

from skyplan import __version__
from skyplan.cli import skyctl_cmd, skyplan_cmd
from tests.workspaces import BASIC

ESC = "\x1b["
BIN = Path(sys.executable).parent


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


EVERY_COMMAND = [("skyplan", p) for p in command_paths(skyplan_cmd.main)] + [("skyctl", p) for p in command_paths(skyctl_cmd.main)]
IDS = [" ".join((cli, *path)) for cli, path in EVERY_COMMAND]


@pytest.mark.parametrize(("cli", "path"), EVERY_COMMAND, ids=IDS)
def test_every_command_has_help_version_and_no_color(skyplan, skyctl, cli, path):
    run = skyplan if cli == "skyplan" else skyctl
    shown = run(*path, "--help")
    assert shown.exit_code == 0, shown.output
    assert "--no-color" in shown.output and "--version" in shown.output and "--help" in shown.output
    version = run(*path, "--version")
    assert (version.exit_code, version.output) == (0, f"{cli} {__version__}\n")
    # With --no-color as well, neither is disturbed by the other.
    assert run(*path, "--no-color", "--help").exit_code == 0
    assert run(*path, "--no-color", "--version").output == f"{cli} {__version__}\n"


def test_the_new_options_are_documented(skyplan):
    assert "--destroy" in skyplan("plan", "--help").output
    assert "[FILE]..." in skyplan("validate", "--help").output
    assert "[FILE]..." in skyplan("fmt", "--help").output
    for command, usage in [
        (("state", "list"), "[FILE]"),
        (("state", "show"), "[FILE] ADDR"),
        (("state", "rm"), "[FILE] ADDR..."),
        (("force-unlock",), "[FILE] ID"),
        (("show",), "[FILE|PLAN]"),
    ]:
        output = skyplan(*command, "--help").output
        assert f"[OPTIONS] {usage}" in output, command
        assert "--config" not in output, "the old spelling works but is not listed"


def on_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run `argv` with a terminal as its stdout and stderr, as a person at a shell would; its output."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            if not ready:
                raise AssertionError(f"{argv} printed nothing for 60 s")
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the program closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        process.wait(timeout=60)
    return b"".join(chunks).decode()


# (program, arguments, what the output says): each prints something that is coloured on a terminal.
COLOURED = [
    ("skyplan", ["plan"], "Plan: 5 to add"),
    ("skyplan", ["validate", "broken.yaml"], "Error: broken.yaml:"),
    ("skyplan", ["validate", "links.yaml"], "Success!"),
    ("skyplan", ["fmt", "--check", "--diff", "messy.yaml"], "+++ b/messy.yaml"),
    ("skyplan", ["plan", "--destroy"], "No changes."),
    ("skyplan", ["show", "nowhere.yaml"], "Error: nowhere.yaml: no such file"),
    ("skyctl", ["delete", "link", "nope"], "Error: Link 'nope' does not exist."),
]


@pytest.fixture
def terminal_workspace(basic: Path) -> tuple[Path, dict[str, str]]:
    (basic / "broken.yaml").write_text("version: [")
    (basic / "messy.yaml").write_text(BASIC.replace("subnets: [10.10.0.0/16]", "subnets:\n      - 10.10.0.0/16"))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "SKYPLAN_CONFIG", "SKYPLAN_BACKEND")}
    return basic, env | {"TERM": "xterm"}


@pytest.mark.parametrize(("program", "args", "says"), COLOURED, ids=[" ".join([p, *a]) for p, a, _ in COLOURED])
def test_colour_on_a_terminal_unless_refused(terminal_workspace, program, args, says):
    folder, env = terminal_workspace
    argv = [str(BIN / program), *args]
    coloured = on_terminal(argv, folder, env)
    assert ESC in coloured and says in coloured.replace(f"{ESC}0m", "").replace(f"{ESC}1m", ""), coloured
    for refused_argv, refused_env in [
        ([*argv, "--no-color"], env),
        ([str(BIN / program), "--no-color", *args], env),  # on the group, before the command
        (argv, env | {"NO_COLOR": "1"}),
    ]:
        plain = on_terminal(refused_argv, folder, refused_env)
        assert ESC not in plain and says in plain, plain


def test_no_colour_without_a_terminal(terminal_workspace):
    folder, env = terminal_workspace
    result = subprocess.run([str(BIN / "skyplan"), "plan"], cwd=folder, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and "Plan: 5 to add" in result.stdout and ESC not in result.stdout
