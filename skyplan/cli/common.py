"""What both CLIs share: the error boundary, common options, confirmation, durations, output helpers."""

from __future__ import annotations

import os
import re
import sys
import time

import click

from skyplan import __version__
from skyplan.errors import OutputError, SkyplanError
from skyplan.render.errors import render_error, render_failure
from skyplan.render.style import Style, use_colour


# Set by --no-color on any command of the chain; click shares `meta` along it.
_NO_COLOR = "skyplan.no_color"


def _colour_refused() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(_NO_COLOR))


def out_style() -> Style:
    return Style(use_colour(sys.stdout, refused=_colour_refused()))


def err_style() -> Style:
    return Style(use_colour(sys.stderr, refused=_colour_refused()))


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"{ctx.find_root().command.name} {__version__}")
        ctx.exit()


def _refuse_colour(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_NO_COLOR] = True


def _with_common_options(command: click.Command) -> None:
    """--version and --no-color on every command and group, wherever the user puts them."""
    present = {opt for p in command.params for opt in getattr(p, "opts", ())}
    if "--version" not in present:
        command.params.append(
            click.Option(["--version"], is_flag=True, expose_value=False, is_eager=True, callback=_show_version, help="Show the version and exit.")
        )
    if "--no-color" not in present:
        # Eager: read before any other option is acted on, so nothing is printed in colour first.
        command.params.append(
            click.Option(["--no-color"], is_flag=True, expose_value=False, is_eager=True, callback=_refuse_colour, help="Print no colour codes, even on a terminal (as NO_COLOR does).")
        )


class VersionedCommand(click.Command):
    """Every command answers --version and --no-color, not only the top level."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _with_common_options(self)


class GuardedGroup(click.Group):
    """Maps SkyplanError to one line on stderr and exit 1; anything else to a saved report."""

    command_class = VersionedCommand

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _with_common_options(self)

    def main(self, *args, **kwargs):
        # --help and --version of the group itself are printed while click parses the command
        # line, before invoke: an output that cannot take them is told here.
        try:
            return super().main(*args, **kwargs)
        except OutputError as exc:
            _say(exc)
            _drop_unwritten_output()
            sys.exit(1)
        except OSError as exc:
            stream = _failed_stream(exc)
            if stream is None:
                raise
            if stream == "stdout":
                _say(OutputError(f"cannot write to standard output: {exc.strerror or exc}"))
                _drop_unwritten_output()
            sys.exit(1)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except OutputError as exc:
            _say(exc)
            _drop_unwritten_output()
            ctx.exit(1)
        except SkyplanError as exc:
            _say(exc)
            ctx.exit(1)
        except KeyboardInterrupt:
            _say_line("interrupted")
            ctx.exit(130)
        except BrokenPipeError:
            # The reader went away (`skyplan plan | head`): stop quietly, as Unix tools do.
            _drop_unwritten_output()
            ctx.exit(1)
        except OSError as exc:
            stream = _failed_stream(exc)
            if stream is None:
                return self._crashed(ctx, exc)
            if stream == "stdout":  # a command that prints with click.echo met a full disk there
                _say(OutputError(f"cannot write to standard output: {exc.strerror or exc}"))
                _drop_unwritten_output()
            # stderr: an error could not be told (its own disk full); the exit code tells it
            ctx.exit(1)
        except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into a report
            return self._crashed(ctx, exc)

    @staticmethod
    def _crashed(ctx: click.Context, exc: BaseException):
        try:
            saved = f"the full report was saved to {save_crash_report(exc)}"
        except Exception as failure:  # noqa: BLE001 - a full disk must not turn into a traceback
            reason = getattr(failure, "strerror", None) or type(failure).__name__
            saved = f"the report could not be saved ({reason})"
        _say_line(f"unexpected internal error ({type(exc).__name__}); {saved}")
        ctx.exit(1)


def _say(exc: SkyplanError) -> None:
    try:
        report_error(exc)
    except OSError:
        pass  # stderr cannot take it either: the exit code is what is left


def _say_line(message: str) -> None:
    try:
        click.echo(render_error(message, err_style()), nl=False, err=True)
    except OSError:
        pass


def _failed_stream(exc: OSError) -> str | None:
    """"stdout" or "stderr" if `exc` was raised printing to it (click.echo), None if anywhere else."""
    innermost = exc.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    frame = innermost.tb_frame if innermost is not None else None
    if frame is None or frame.f_code.co_name != "echo" or frame.f_globals.get("__name__") != "click.utils":
        return None
    return "stderr" if frame.f_locals.get("err") else "stdout"


CLOSED_OUTPUT = "cannot write to standard output: it is closed"


def _drop_unwritten_output() -> None:
    """Point stdout at /dev/null, so that what it still holds is not written again at exit
    (which would report the same failure a second time, as a traceback)."""
    if sys.stdout is None:
        return
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # no real descriptor behind stdout (tests): nothing is left to flush


def report_error(exc: SkyplanError, file: str | None = None) -> None:
    """An expected error on stderr: every diagnostic of a bad configuration, else one line.

    `file` names the file a one-line message is about when the message does not (commands that
    check several files at once).
    """
    click.echo(render_failure(exc, err_style(), file), nl=False, err=True)


# Variables worth seeing in a report: skyplan's own and libpq's (values redacted).
_REPORTED_ENVIRONMENT = ("SKYPLAN_", "PG", "NO_COLOR")


def crash_report(exc: BaseException) -> str:
    """The report's text: version, command line, environment and traceback, secrets masked.

    Bug reports get pasted into issues, so a password in a URL on the command line or in
    SKYPLAN_BACKEND, a key, or a template variable never reaches the file.
    """
    import traceback  # here: only a crash needs it, and every command starts without it

    from skyplan.redact import redact, redact_argv, redact_environment
    from skyplan.state.urls import url_secrets

    environment = redact_environment(dict(os.environ), _REPORTED_ENVIRONMENT)
    secrets = [s for value in (*sys.argv, *os.environ.values()) if "://" in value for s in url_secrets(value)]
    text = (
        f"skyplan {__version__}\nargv: {redact_argv(sys.argv)!r}\n"
        f"environment: {environment!r}\n\n" + "".join(traceback.format_exception(exc))
    )
    return redact(text, tuple(secrets))


def save_crash_report(exc: BaseException) -> str:
    """Write the report to a new file of the temporary folder, readable by its owner only."""
    import tempfile

    text = crash_report(exc)
    # mkstemp creates the file 0600 with O_EXCL, so a name planted in a shared /tmp is never
    # followed or reused.
    fd, path = tempfile.mkstemp(prefix=f"skyplan-crash-{time.strftime('%Y%m%dT%H%M%S')}-", suffix=".log")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(text)
    except OSError:
        os.unlink(path)
        raise
    return path


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def confirm(question: str, description: str) -> bool:
    """Terraform's prompt: only the exact word 'yes' approves."""
    click.echo(f"{question}\n  {description}\n  Only 'yes' will be accepted to approve.\n")
    answer = click.prompt("  Enter a value", default="", show_default=False, prompt_suffix=": ")
    click.echo("")
    return answer.strip() == "yes"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.match(str(value))
        if not match:
            self.fail(f"'{value}' is not a duration such as 0s, 500ms, 30s, 5m", param, ctx)
        amount, unit = float(match.group(1)), match.group(2) or "s"
        return amount * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


lock_timeout_option = click.option(
    "--lock-timeout",
    type=Duration(),
    default="0s",
    show_default=True,
    help="How long to wait for the state lock held by another run.",
)


def variables_options(command):
    """--var KEY=VALUE and --var-file FILE, for templated configurations."""
    command = click.option(
        "--var-file", "var_files", multiple=True, metavar="FILE", help="YAML mapping of template variables (repeatable)."
    )(command)
    command = click.option(
        "--var", "var_items", multiple=True, metavar="KEY=VALUE", help="A template variable; makes FILE a jinja2 template (repeatable)."
    )(command)
    return command


def collect_variables(var_items: tuple[str, ...], var_files: tuple[str, ...]) -> dict | None:
    """None when no variable was given: then only a `.j2` file is rendered as a template."""
    if not var_items and not var_files:
        return None  # before the imports: the template modules bring the sandbox with them
    from pathlib import Path

    from skyplan.config.template import load_var_file, parse_var

    values: dict = {}
    for path in var_files:
        values.update(load_var_file(Path(path)))
    for item in var_items:
        try:
            key, value = parse_var(item)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--var") from None
        values[key] = value
    return values


def targeting_options(command):
    command = click.option(
        "--exclude", "excludes", multiple=True, metavar="ADDR", help="Leave ADDR (and what depends on it) out of the plan (repeatable)."
    )(command)
    command = click.option(
        "--target", "targets", multiple=True, metavar="ADDR", help="Plan only ADDR and what it depends on (repeatable; not for routine use)."
    )(command)
    return command


def replace_option(command):
    return click.option(
        "--replace",
        "replace",
        multiple=True,
        metavar="ADDR",
        help="Replace ADDR even if nothing changed: a cluster gets a new key, its peers are updated, its address stays (repeatable).",
    )(command)


def console():
    """The terminal, as operations (skyplan/operations.py) talk to it."""
    from skyplan.operations import Console

    # Looked up when called, so that a test may stand in for the terminal.
    return Console(show=_show, style=out_style(), can_ask=lambda: stdin_is_terminal(), ask=confirm)


def _show(text: str) -> None:
    # Written and flushed directly: click.echo looks for a terminal, Jupyter and colour codes on
    # every call, and apply prints a line per resource (20,100 for a full mesh of 200 clusters).
    # Colour is already only there on a terminal (out_style). sys.stdout is looked up each time,
    # so that a test may stand in for it.
    stream = sys.stdout
    if stream is None:  # closed (library use: the console scripts stop before a command, entry.py)
        raise OutputError(CLOSED_OUTPUT)
    try:
        try:
            stream.write(text)
        except UnicodeEncodeError:  # a terminal that cannot show some character: click replaces it
            click.echo(text, nl=False)
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write to standard output: {exc.strerror or exc}") from None
