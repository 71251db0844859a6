"""Commands the provider runs: the on_change hook and the status probe (argv lists, no shell).

Their argv templates come from links.yaml, so they render in skyplan's limited sandbox, like a
templated links.yaml. The commands run without the database credentials skyplan was given
(`hook_environment`), each in a process group of its own that is killed at `hook_timeout`, and
what they print is masked before it is quoted anywhere.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from skyplan.sdk import Limits
from skyplan_wireguard import keys

# Per argument of a command (exec refuses one past 128 KiB anyway). Read when the environment
# is first built.
LIMITS = Limits(seconds=2.0, output_chars=100_000, items=100_000, depth=16)

# What each template may name; validation renders a template with these stand-ins first.
STATUS_VARIABLES = {"cluster": "example", "interface": "wgsky0"}
ON_CHANGE_VARIABLES = {**STATUS_VARIABLES, "config_path": "wireguard/example/wgsky0.conf", "address": "100.96.0.1"}

# Never passed on to a hook: skyplan's own settings (SKYPLAN_BACKEND holds the database URL with
# its password), every libpq setting (PGPASSWORD, PGPASSFILE, PGSERVICEFILE, PGHOST…: all begin
# with PG) and DATABASE_URL. Everything else (PATH, HOME…) is the hook's as it was skyplan's.
_WITHHELD_PREFIXES = ("SKYPLAN_", "PG")
_WITHHELD_NAMES = frozenset({"DATABASE_URL"})

# How much of a failing command's stderr a reason quotes (its end, where the error usually is).
STDERR_QUOTED = 2000


@lru_cache(maxsize=1)
def environment() -> Any:
    from jinja2 import StrictUndefined

    from skyplan.sdk.templates import LimitedEnvironment

    quote = {"quote": lambda value: shlex.quote(str(value))}
    return LimitedEnvironment(LIMITS, filters=quote, undefined=StrictUndefined, keep_trailing_newline=False)


@lru_cache(maxsize=512)
def _compiled(part: str):
    from skyplan.sdk.templates import compile_template

    return compile_template(environment(), part)


class ArgvTemplateError(ValueError):
    """An argument of a command could not be rendered; `kind` as in skyplan.sdk.TemplateFailure."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def render_argv(template: list[str], context: Mapping[str, object]) -> list[str]:
    """Each argument rendered within LIMITS; ArgvTemplateError naming the argument and why."""
    from skyplan.sdk.templates import TemplateFailure, render

    argv = []
    for index, part in enumerate(template):
        try:
            argv.append(render(_compiled(part), context))
        except TemplateFailure as exc:
            if exc.kind == "undefined":
                known = ", ".join(sorted(context))
                raise ArgvTemplateError(f"argument {index}: {exc.reason}; the variables are {known}", exc.kind) from None
            if exc.kind == "syntax":
                raise ArgvTemplateError(f"argument {index} is not a valid template: {exc.reason}", exc.kind) from None
            raise ArgvTemplateError(f"argument {index}: template: {exc.reason}", exc.kind) from None
    return argv


def hook_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """skyplan's environment without the variables that carry database credentials."""
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith(_WITHHELD_PREFIXES) and name not in _WITHHELD_NAMES
    }


def quoted_stderr(stderr: str) -> str:
    """The end of a command's stderr, keys masked first: a key cut in half would not be masked."""
    return keys.redact(stderr.strip())[-STDERR_QUOTED:].strip()


# How many on_change hooks (and status probes) run at once: they mostly wait (a reload, a
# handshake), so a few at a time finish a large apply far sooner than one after another.
AT_ONCE = 8


def run(argv: list[str], timeout: float | None = None) -> tuple[bool, str, str]:
    """Run `argv`; return (succeeded, stdout, a one-paragraph reason on failure).

    The command gets a process group of its own: at `timeout` the whole group is killed, so a
    `sh -c 'sleep 600'` whose sleep outlives its shell cannot hold the pipes, and the state lock,
    open for ever.
    """
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=hook_environment(),
            start_new_session=True,
        )
    except FileNotFoundError:
        return False, "", f"command not found: {argv[0]}"
    except PermissionError:
        return False, "", f"command not executable: {argv[0]}"
    except OSError as exc:  # an argument too long for exec, say
        return False, "", f"command could not be started: {argv[0]}: {exc.strerror or exc}"
    with _running_lock:
        _running.add(process)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        try:
            process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # a descendant that left the group holds the pipes: not waited for
        return False, "", f"command timed out after {timeout:g}s and was killed: {shlex.join(argv)}"
    except BaseException:  # Ctrl-C while waiting: the command goes with skyplan
        _kill_group(process)
        process.wait()
        raise
    finally:
        with _running_lock:
            _running.discard(process)
    if process.returncode != 0:
        # stderr only, and keys masked: a status probe's stdout is `wg show dump`, which holds
        # the private key, and reasons end up in the state and in `skyctl get -o json`.
        detail = quoted_stderr(stderr) or "nothing on stderr"
        return False, stdout, f"`{shlex.join(argv)}` exited with {process.returncode}: {detail}"
    return True, stdout, ""


# Commands running now, in any thread: in a session of their own, a Ctrl-C at the terminal does
# not reach them, so an apply that stops early ends them itself (kill_running).
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


def kill_running() -> None:
    """End every command that is still running, with what it started."""
    with _running_lock:
        processes = list(_running)
    for process in processes:
        if process.poll() is None:
            _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    # Only ever a command that is still running: what a hook that succeeded left behind on
    # purpose (a wireguard-go that `wg-quick up` started) is not skyplan's to end.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
