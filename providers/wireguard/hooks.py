"""Commands the provider runs: the on_change hook and the status probe (argv lists, no shell).

Their argv templates come from links.yaml, so they render in skyplan's limited sandbox, like a
templated links.yaml. The commands run without the database credentials skyplan was given
(`hook_environment`), and what they print is masked before it is quoted anywhere.
"""

from __future__ import annotations

import os
import shlex
import subprocess
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


def run(argv: list[str], timeout: float | None = None) -> tuple[bool, str, str]:
    """Run `argv`; return (succeeded, stdout, a one-paragraph reason on failure)."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", env=hook_environment(), timeout=timeout, check=False
        )
    except FileNotFoundError:
        return False, "", f"command not found: {argv[0]}"
    except PermissionError:
        return False, "", f"command not executable: {argv[0]}"
    except subprocess.TimeoutExpired:
        return False, "", f"command timed out after {timeout:g}s: {shlex.join(argv)}"
    except OSError as exc:  # an argument too long for exec, say
        return False, "", f"command could not be started: {argv[0]}: {exc.strerror or exc}"
    if done.returncode != 0:
        # stderr only, and keys masked: a status probe's stdout is `wg show dump`, which holds
        # the private key, and reasons end up in the state and in `skyctl get -o json`.
        detail = quoted_stderr(done.stderr) or "nothing on stderr"
        return False, done.stdout, f"`{shlex.join(argv)}` exited with {done.returncode}: {detail}"
    return True, done.stdout, ""
