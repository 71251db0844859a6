"""Whole commands on a workspace, for both CLIs: plan, plan -> confirm -> apply, saved plans,
`state mv`, and skyctl's verbs.

An operation opens its workspace (skyplan/workspace.py), takes the lock, plans, applies and
closes the workspace again. It talks to the person running it only through a `Console`, which
each CLI builds: text rendered by skyplan/render/ goes out, a yes or no comes back. Nothing here
knows click; problems leave as SkyplanError, carrying their diagnostics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from skyplan import collector
from skyplan.errors import ApplyError, OutputError, SkyplanError

if TYPE_CHECKING:
    from skyplan.plan.model import Plan
    from skyplan.render.style import Style
    from skyplan.state.model import State
    from skyplan.state.store import LockInfo
    from skyplan.workspace import Workspace


@dataclass(frozen=True)
class Console:
    """The person running a command, as an operation sees them."""

    show: Callable[[str], None]  # rendered text, printed as it is (it ends its own lines)
    style: Style  # how that text may be coloured
    can_ask: Callable[[], bool]  # whether someone is there to answer (a terminal)
    ask: Callable[[str, str], bool]  # a question and what approving it does -> approved


class Opens(Protocol):
    def open(self) -> Workspace: ...


@dataclass(frozen=True)
class ConfigSource:
    """The configuration a skyplan command names, and the variables of a templated one."""

    file: str  # as the user named it (or the default): messages quote it so
    variables: dict | None = None
    default: bool = False  # the default file: a command suggested to the user need not name it
    resources: bool = True  # False: settings and backend are enough (config/loader.py)

    def open(self) -> Workspace:
        from skyplan.workspace import open_workspace

        return open_workspace(Path(self.file), display=self.file, variables=self.variables, resources=self.resources)


@dataclass(frozen=True)
class SkyctlSource:
    """skyctl's workspace: --config or $SKYPLAN_CONFIG, else ./links.yaml, else defaults here."""

    file: str | None
    variables: dict | None = None

    def open(self) -> Workspace:
        from skyplan.workspace import open_skyctl_workspace

        return open_skyctl_workspace(self.file, self.variables)


Mode = Literal["normal", "destroy"]


@dataclass(frozen=True)
class Selection:
    """What a plan covers: everything the file declares, or (destroy) nothing; --target,
    --exclude and --replace narrow or force it."""

    mode: Mode = "normal"
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()

    def refuse_early(self) -> None:
        """What is wrong whatever the workspace holds: refused before anything is opened or locked."""
        if self.replace and self.mode != "normal":
            from skyplan.planning import check_replace

            check_replace({}, None, list(self.replace), self.mode)

    def check(self, ws: Workspace) -> None:
        """Unknown addresses, refused before the lock is taken (and written). A destroy's target
        may name what the file no longer declares, so only the plan itself judges it."""
        if self.mode == "normal":
            from skyplan.planning import check_targets

            check_targets(ws, list(self.targets), list(self.excludes), list(self.replace))

    def plan(self, ws: Workspace, prior: State | None, *, refresh: bool = True, recall: bool = False) -> Plan:
        """`recall`: the plan is only shown as text, so one with no changes may be answered by the
        record of the last such plan (planning.make_plan)."""
        from skyplan.planning import make_plan

        # Desired resources, readings and changes: records without cycles, freed by reference
        # counting; a collection meanwhile would only walk them (collector.py).
        with collector.paused(settle=True):
            return make_plan(
                ws,
                prior,
                desired=dict if self.mode == "destroy" else ws.desired,
                mode=self.mode,
                do_refresh=refresh,
                targets=list(self.targets),
                excludes=list(self.excludes),
                replace=list(self.replace),
                recall=recall and not (self.targets or self.excludes or self.replace),
            )


@dataclass(frozen=True)
class _Words:
    verb: str  # the command, as the lock and the messages name it
    question: str
    cancelled: str


_WORDS: dict[str, _Words] = {
    "normal": _Words("apply", "Do you want to perform these actions?", "Apply cancelled."),
    "destroy": _Words("destroy", "Do you really want to destroy all resources?", "Destroy cancelled."),
}


@contextlib.contextmanager
def _opened(source: Opens) -> Iterator[Workspace]:
    ws = source.open()
    try:
        yield ws
    finally:
        ws.close()
        # With its configuration and the state it read: freed by the exit of a console script
        # at once, not object by object when the command returns (collector.keep_to_the_end).
        collector.keep_to_the_end(ws)


# -- skyplan ---------------------------------------------------------------------------------


def plan(
    source: ConfigSource,
    selection: Selection,
    console: Console,
    *,
    refresh: bool = True,
    out: str | None = None,
    var_files: tuple[str, ...] = (),
    as_json: bool = False,
    compact: bool = False,
    lock_timeout: float = 0.0,
) -> Plan:
    """`skyplan plan`: show (and with `out`, save) what apply would do."""
    from skyplan.render.plan_json import render_plan_json
    from skyplan.render.plan_text import render_plan, render_saved_note

    if out:
        from skyplan.plan.saved import check_plan_destination

        check_plan_destination(Path(out), Path(source.file), [Path(v) for v in var_files])
    selection.refuse_early()
    with _opened(source) as ws:
        selection.check(ws)
        with ws.locked("plan", lock_timeout):
            result = selection.plan(ws, ws.read_state(), refresh=refresh, recall=not (out or as_json))
            ws.remember_config()
        if out:
            _save(ws, result, source, out, refresh)
        if as_json:
            console.show(render_plan_json(result, ws.provider_name))
        else:
            console.show(render_plan(result, console.style, compact=compact))
    if out and not as_json:
        from skyplan.plan.saved import plan_choices

        choices = plan_choices(result)
        console.show(render_saved_note(out, None if source.default else source.file, source.variables is not None, choices))
    collector.keep_to_the_end(result)
    return result


def _save(ws: Workspace, result: Plan, source: ConfigSource, out: str, refresh: bool) -> None:
    from skyplan.plan.saved import saved_plan, write_plan_file

    assert ws.loaded is not None and ws.backend is not None
    settings = ws.loaded.settings.model_dump(mode="json")
    saved = saved_plan(result, Path(source.file), ws.loaded.digest, refresh, ws.backend, ws.provider_name, settings)
    write_plan_file(Path(out), saved)


def apply(
    source: ConfigSource,
    selection: Selection,
    console: Console,
    *,
    auto_approve: bool = False,
    as_json: bool = False,
    compact: bool = False,
    lock_timeout: float = 0.0,
) -> bool:
    """`skyplan apply` and `skyplan destroy`: plan, confirm, apply; say whether anything was to be done."""
    from skyplan.render.apply_text import render_outcome_json
    from skyplan.render.plan_text import render_plan

    words = _WORDS[selection.mode]
    selection.refuse_early()
    if as_json and not auto_approve:
        raise SkyplanError("--json needs --auto-approve: there is no prompt in JSON mode")
    with _opened(source) as ws:
        selection.check(ws)
        with ws.locked(words.verb, lock_timeout) as lock:
            prior = ws.read_state()
            result = selection.plan(ws, prior)
            collector.keep_to_the_end((prior, result))
            ws.remember_config()
            if not as_json:
                console.show(render_plan(result, console.style, compact=compact))
            if not result.has_changes:
                if as_json:
                    console.show(render_outcome_json(result, None, ws.provider_name))
                return False
            if not auto_approve:
                _confirm(console, words)
            _apply_and_report(ws, result, prior, lock, console, as_json)
    return True


def _confirm(console: Console, words: _Words) -> None:
    # Asked only once there is something to do: with nothing to do there is no question, so CI needs no flag.
    if not console.can_ask():
        raise SkyplanError(
            f"{words.verb} needs confirmation, but input is not a terminal; pass --auto-approve to apply without it"
        )
    if not console.ask(words.question, "skyplan will perform the actions described above."):
        raise SkyplanError(words.cancelled)


def apply_saved(
    plan_file: str, source: ConfigSource, selection: Selection, console: Console, *, as_json: bool = False, lock_timeout: float = 0.0
) -> bool:
    """`skyplan apply PLAN`: exactly the saved plan, if planning again gives it; else nothing.

    Nothing in the file decides anything: the configuration, the state and the choices given on
    this command line (`selection`) are planned again, and the file only has to agree. A plan
    edited into a destroy, or into one that replaces a key, therefore meets a command line that
    did not ask for that, and is refused.
    """
    from skyplan.plan.saved import check_choices, check_current, check_same
    from skyplan.workspace import open_saved_plan

    selection.refuse_early()
    ws, saved = open_saved_plan(Path(plan_file), Path(source.file), source.file, source.variables)
    try:
        assert ws.loaded is not None
        check_choices(saved, Path(plan_file), selection.mode, selection.targets, selection.excludes, selection.replace)
        with ws.locked("apply", lock_timeout) as lock:
            prior = ws.read_state()
            check_current(saved, prior, Path(plan_file))
            # What is applied is planned here from trusted inputs; the file only has to agree.
            result = selection.plan(ws, prior, refresh=saved.refresh)
            ws.remember_config()
            settings = ws.loaded.settings.model_dump(mode="json")
            check_same(saved, Path(plan_file), source.file, result, ws.provider_name, settings)
            _apply_and_report(ws, result, prior, lock, console, as_json)
    finally:
        ws.close()
    return result.has_changes


def _apply_and_report(ws: Workspace, result: Plan, prior: State | None, lock: LockInfo, console: Console, as_json: bool) -> None:
    """Apply `result`, a line per finished resource, then the outcome; ApplyError if anything failed."""
    from skyplan.apply import apply_plan
    from skyplan.progress import Lines
    from skyplan.render.apply_text import render_outcome, render_outcome_json, render_result

    # A closed pipe or a full disk behind stdout must not stop an apply half-way: its changes are
    # made and recorded, then the command fails with the output's error (lines.failed).
    lines = Lines(console.show)

    def progress(change, outcome) -> None:
        if not as_json:
            lines.add(render_result(change, outcome, console.style) + "\n")

    try:
        outcome = apply_plan(result, prior, ws.store, ws.provider, lock=lock, on_result=progress)
    finally:
        lines.close()
    failed = _failures_told(outcome.failed)
    unwritten = lines.failed
    if unwritten is None:
        # The outcome is the output's last write, where a disk that filled during the progress
        # lines is often found (a buffered stream says so at the next write, not the short one).
        try:
            if as_json:
                console.show(render_outcome_json(result, outcome, ws.provider_name))
            else:
                console.show(("\n" if result.has_changes else "") + render_outcome(result, outcome, console.style))
        except (OutputError, BrokenPipeError) as exc:
            unwritten = exc
    if unwritten is not None:
        # Told on stderr, which may still work: what failed matters more than the lost lines.
        if failed:
            raise ApplyError(f"{failed}; the rest of this apply's output could not be written ({_why(unwritten)})")
        if isinstance(unwritten, OutputError):
            raise OutputError(f"{unwritten}; the apply went on without it, and the state records its changes")
        raise unwritten  # a reader that went away: a quiet exit 1, as `| head` expects
    if failed:
        raise ApplyError(f"{failed}. Fix the cause and apply again.")


def _failures_told(failed: list) -> str:
    count = len(failed)
    return f"{count} resource{'s' if count != 1 else ''} failed; the state records what succeeded" if count else ""


def _why(exc: BaseException) -> str:
    if isinstance(exc, BrokenPipeError):
        return "its reader went away"
    return str(exc).removeprefix("cannot write to standard output: ")


def move_state(source: ConfigSource, old: str, new: str, console: Console, *, lock_timeout: float = 0.0) -> None:
    """`skyplan state mv`: rename a resource in the state; its files follow it."""
    from dataclasses import replace

    from skyplan.apply import apply_plan
    from skyplan.config.diagnostics import Diagnostic
    from skyplan.plan.moves import move_plan

    with _opened(replace(source, resources=False)) as ws:
        with ws.locked("state mv", lock_timeout) as lock:
            prior = ws.read_state()
            outcome = apply_plan(move_plan(prior, old, new), prior, ws.store, ws.provider, lock=lock)
    if outcome.failed:
        raise ApplyError(
            diagnostics=[
                Diagnostic(f"moving {old} to {new} failed: {r.error}. The state records how far it got; run it again")
                for r in outcome.failed
            ]
        )
    console.show(f'Move "{old}" to "{new}"\nSuccessfully moved 1 object(s).\n')


# -- skyctl ----------------------------------------------------------------------------------


def create_link(source: SkyctlSource, name: str, ends: tuple[str, str], console: Console, *, lock_timeout: float = 0.0) -> None:
    from skyplan import imperative

    with _opened(source) as ws:
        done = imperative.create_link(ws, name, ends[0], ends[1], lock_timeout)
    _report(done, f"Created link {name}.", console)


def delete_link(source: SkyctlSource, name: str, console: Console, *, lock_timeout: float = 0.0) -> None:
    from skyplan import imperative

    with _opened(source) as ws:
        done = imperative.delete_link(ws, name, lock_timeout)
    _report(done, f"Deleted link {name}.", console)


def create_cluster(
    source: SkyctlSource,
    name: str,
    endpoint: str | None,
    subnets: list[str],
    listen_port: int | None,
    console: Console,
    *,
    lock_timeout: float = 0.0,
    gateway: str | None = None,
    **arguments,
) -> None:
    """`arguments`: further cluster arguments, named as in links.yaml; unset ones are None."""
    from skyplan import imperative

    with _opened(source) as ws:
        done = imperative.create_cluster(ws, name, endpoint, subnets, listen_port, lock_timeout, gateway=gateway, **arguments)
    _report(done, f"Created cluster {name}.", console)


def delete_cluster(source: SkyctlSource, name: str, console: Console, *, lock_timeout: float = 0.0) -> None:
    from skyplan import imperative

    with _opened(source) as ws:
        done = imperative.delete_cluster(ws, name, lock_timeout)
    _report(done, f"Deleted cluster {name}.", console)


def _report(done, finished: str, console: Console) -> None:
    from skyplan.config.diagnostics import Diagnostic
    from skyplan.render.plan_text import one_line

    lines = [one_line(change) for change in done.plan.actionable]
    lines += [f"Note: {note}" for note in done.notes]
    failures = [Diagnostic(f"{r.address}: {r.error}") for r in done.outcome.failed]
    try:
        if lines:
            console.show("\n".join(lines) + "\n")
        if not failures:
            console.show(finished + "\n")
    except (OutputError, BrokenPipeError) as exc:
        # The change is made and recorded: say so on stderr, with what failed, not only the output.
        what = f"the output could not be written ({_why(exc)})"
        if failures:
            raise ApplyError(diagnostics=[*failures, Diagnostic(what)]) from None
        raise OutputError(f"{finished[:-1] if finished.endswith('.') else finished}, but {what}") from None
    if failures:
        raise ApplyError(diagnostics=failures)


def get(
    source: SkyctlSource,
    kind: str,
    name: str | None,
    output: str,
    console: Console,
    *,
    watch: bool = False,
    every: float = 2.0,
    sleep: Callable[[float], None] | None = None,
) -> None:
    """`skyctl get`: the table (or objects) once, or redrawn whenever a status changes."""
    import time

    sleep = sleep or time.sleep  # looked up now, so that tests may stand in for the clock
    if watch:
        collector.keep_collecting()  # a watch runs until stopped: it cannot keep what it drops
    with _opened(source) as ws:
        shown = None
        try:
            while True:
                with collector.paused():
                    text, key = _snapshot(ws, kind, name, output, keyed=watch)
                if shown is None or key != shown:
                    if shown is not None:
                        console.show("\n")
                    console.show(text)
                    shown = key
                ws.remember_checked()
                if not watch:
                    return
                sleep(every)
        except KeyboardInterrupt:
            return  # Ctrl-C ends a watch; that is success, not an error


def _snapshot(ws: Workspace, kind: str, name: str | None, output: str, keyed: bool = True) -> tuple[str, object]:
    """The text to show, and what a redraw depends on (not AGE, which changes every second);
    `keyed=False`: shown once, no redraw to decide, so () stands for the key."""
    from itertools import chain

    from skyplan.imperative import observe_each
    from skyplan.render import objects

    state = ws.read_state()
    resources = [r for r in (state.resources if state else []) if r.type == kind and (name is None or r.name == name)]
    if name is not None and not resources:
        raise SkyplanError(f"{kind.capitalize()} '{name}' not found.")
    # Every resource, on every redraw of a watch: its address made once.
    prefix = f"{kind}."
    addresses = [prefix + r.name for r in resources]
    observed = observe_each(ws, state, resources, addresses)
    shown = [phase for phase, _ in observed]
    key: tuple[str, ...] = ()
    if keyed:
        # One flat tuple of strings (address, ends, phase for each): a tuple per resource would
        # be 100,000 objects for the collector to scan, kept alive through the whole redraw.
        if kind == "link":
            key = tuple(chain.from_iterable((address, *r.ends, phase) for address, r, phase in zip(addresses, resources, shown)))
        else:
            key = tuple(chain.from_iterable(zip(addresses, shown)))
    # What the provider's computed values add to the views (WireGuard: a cluster's ADDRESS).
    display = type(ws.provider).display_spec.get(kind, objects.NO_DISPLAY)
    if output != "table":
        build = objects.link_object if kind == "link" else objects.cluster_object
        items = [build(r, phase, conditions, display=display) for r, (phase, conditions) in zip(resources, observed)]
        return objects.render_objects(items, output, kind.capitalize(), single=name is not None), key
    if not resources:
        return f"No {kind}s found.\n", key
    if kind == "link":
        return objects.table(objects.link_columns(display), objects.link_rows(resources, shown, display)), key
    rows = [objects.cluster_row(r, phase, display=display) for r, phase in zip(resources, shown)]
    return objects.table(objects.cluster_columns(display), rows), key
