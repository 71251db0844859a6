"""Commands the provider runs: the on_change hook and the status probe (argv lists, no shell)."""

from __future__ import annotations

import shlex
import subprocess
from functools import lru_cache
from typing import Any

from skyplan_wireguard import keys


@lru_cache(maxsize=1)
def environment() -> Any:
    from jinja2 import Environment, StrictUndefined

    env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["quote"] = lambda value: shlex.quote(str(value))
    return env


def render_argv(template: list[str], context: dict[str, object]) -> list[str]:
    from jinja2 import UndefinedError

    env = environment()
    try:
        return [env.from_string(part).render(context) for part in template]
    except UndefinedError as exc:
        known = ", ".join(sorted(context))
        raise ValueError(f"{exc.message}; the variables are {known}") from None


def run(argv: list[str], timeout: float | None = None) -> tuple[bool, str, str]:
    """Run `argv`; return (succeeded, stdout, a one-paragraph reason on failure)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return False, "", f"command not found: {argv[0]}"
    except PermissionError:
        return False, "", f"command not executable: {argv[0]}"
    except subprocess.TimeoutExpired:
        return False, "", f"command timed out after {timeout:g}s: {shlex.join(argv)}"
    if done.returncode != 0:
        # stderr only, and keys masked: a status probe's stdout is `wg show dump`, which holds
        # the private key, and reasons end up in the state and in `skyctl get -o json`.
        detail = keys.redact(done.stderr.strip()[-2000:]) or "nothing on stderr"
        return False, done.stdout, f"`{shlex.join(argv)}` exited with {done.returncode}: {detail}"
    return True, done.stdout, ""
