"""Console-script entry points: process-wide settings a library must not impose, then the CLI."""

from __future__ import annotations

import gc
import os
import sys


def _tune_collector() -> None:
    # A command builds its objects (state, plans, views) once and drops them all at exit. The
    # default thresholds re-scan them hundreds of times while they are being built, a quarter of
    # a `skyctl get` on 10,000 links; cycles are still collected, only less often.
    gc.set_threshold(200_000, 20, 20)
    # And what a command keeps to its end (configuration, state, plan) is walked by none after
    # it is built (collector.paused(settle=True)).
    from skyplan import collector

    collector.settle_in_this_process()


def _allow_open_files() -> None:
    # An apply writes a config per cluster and keeps each cluster's folder open from staging to
    # commit (skyplan/atomic.py Batch): a fleet of 10,000 clusters needs more descriptors than
    # the common soft limit of 1,024. The hard limit is the system's word; up to it is ours.
    try:
        import resource
    except ImportError:  # not a POSIX system
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1 << 16 if hard == resource.RLIM_INFINITY else min(hard, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass  # as it was: the files beyond the limit fail, each with its reason


_PYDANTIC_PLUGINS = "pydantic.plugin._loader"


def _without_pydantic_plugins() -> None:
    # pydantic looks for plugins (the "pydantic" entry-point group) when it builds its first
    # validator, which every command does: importing importlib.metadata and scanning every
    # installed distribution for them is 15-20 ms of each command.
    # skyplan's commands run no pydantic plugins (they observe validations, which a command
    # line tool has no use for), so the lookup answers "none" without scanning. Any other name
    # pydantic asks of that module is the real one's: a pydantic that uses it differently works
    # as before, only without the saving.
    if _PYDANTIC_PLUGINS in sys.modules:
        return
    import types

    stand_in = types.ModuleType(_PYDANTIC_PLUGINS)
    stand_in.get_plugins = lambda: ()  # type: ignore[attr-defined]

    def real(name: str):
        if name.startswith("__"):
            raise AttributeError(name)  # the import system asking whether it is a package
        import importlib

        if sys.modules.get(_PYDANTIC_PLUGINS) is stand_in:
            del sys.modules[_PYDANTIC_PLUGINS]
        return getattr(importlib.import_module(_PYDANTIC_PLUGINS), name)

    stand_in.__getattr__ = real  # type: ignore[attr-defined]
    sys.modules[_PYDANTIC_PLUGINS] = stand_in


def _guard_standard_descriptors() -> None:
    """/dev/null in the place of a closed stdin, stdout or stderr (`skyplan plan >&-`), as OpenSSH
    does (sanitise_stdfd): else the next file opened takes that descriptor, and what is written to
    it, by skyplan or by a program it runs, goes into that file: the state's lock, a config.

    A closed stdout ends the command before it starts: every command says what it did, and one
    that cannot say it must not do it (a `--json` apply, a skyctl create). A closed stdin reads
    as empty and is no terminal; a closed stderr takes what is said there and shows nothing."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
    for fd in closed:
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    if 1 in closed:
        from skyplan.cli.common import CLOSED_OUTPUT, err_style
        from skyplan.render.errors import render_error

        try:
            os.write(2, render_error(CLOSED_OUTPUT, err_style()).encode())
        except OSError:
            pass  # nowhere to say it either: the exit code is what is left
        os._exit(1)
    if 0 in closed and sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own, for its life
    if 2 in closed and sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115


def _start() -> None:
    _guard_standard_descriptors()
    _tune_collector()
    _allow_open_files()
    _without_pydantic_plugins()


def _exit_at_once(code: int) -> None:
    """End the process with `code` once the command is done, without the interpreter's teardown.

    A normal exit frees every object one by one and clears every module (the state, the
    configuration, pydantic's validators): 10-15 ms of every command, for memory the system
    takes back at once anyway. What an exit must still do is done first:
    the atexit handlers run and the output is flushed. Returns, leaving the normal exit to it,
    when threads are still running (that exit waits for them), the output cannot be flushed
    (that exit reports it as it always has), a profiler or tracer watches the process
    (cProfile, pyinstrument and coverage write their findings once the command returns), or a
    provider other than skyplan's own was loaded.
    """
    import threading

    if threading.active_count() != 1 or sys.getprofile() is not None or sys.gettrace() is not None or _foreign_provider_loaded():
        return
    import atexit

    atexit._run_exitfuncs()  # (and cleared: the normal exit, if it comes to that, runs none twice)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


_OWN_PACKAGES = ("skyplan", "skyplan_wireguard")


def _foreign_provider_loaded() -> bool:
    """Whether a provider other than skyplan's own was loaded: its code (and the libraries it
    uses) may count on the finalizers a normal exit runs, to flush a file or remove a temporary."""
    provider_module = sys.modules.get("skyplan.sdk.provider")
    if provider_module is None:
        return False
    found, seen = list(provider_module.Provider.__subclasses__()), set()
    while found:
        cls = found.pop()
        if cls in seen:
            continue
        seen.add(cls)
        if cls.__module__.split(".", 1)[0] not in _OWN_PACKAGES:
            return True
        found.extend(cls.__subclasses__())
    return False


def _run(main, name: str) -> None:
    try:
        main(prog_name=name)  # click ends it with SystemExit, in every case it handles
    except SystemExit as done:
        code = 0 if done.code is None else done.code
        if isinstance(code, int):
            _exit_at_once(code)
        raise


def skyplan() -> None:
    _start()
    from skyplan.cli.skyplan_cmd import main

    _run(main, "skyplan")


def skyctl() -> None:
    _start()
    from skyplan.cli.skyctl_cmd import main

    _run(main, "skyctl")
