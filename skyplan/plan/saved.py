"""Saved plan files: `plan --out` writes one, `apply PLAN` applies exactly it, or refuses.

A plan file holds the plan and what it was made from (the configuration's digest, provider
settings, where the state lives). It never holds a secret: keys are not in plans, and a backend
URL is stored with its password removed.

A plan file can be edited by whoever handles it between plan and apply, so nothing in it is
believed: `apply PLAN` loads the configuration named on its command line, requires it to be the
one the plan was made from, plans again from it and the (checked) state, and applies only if
that gives exactly the saved plan. So the file says *that* these changes were reviewed; only
links.yaml and the state say *what* they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from skyplan.atomic import write_atomic
from skyplan.errors import PlanError
from skyplan.plan.model import Item, Plan
from skyplan.state.model import State, now_iso

PLAN_FILE_FORMAT = "skyplan-plan"


class BackendRef(Item):
    type: Literal["local", "postgres"]
    workspace: str
    location: str  # the state file, or the database URL without its password
    password_removed: bool = False  # then the URL must come from SKYPLAN_BACKEND or the file


PLAN_FILE_VERSION = 2  # 2: the configuration's digest and the refresh flag are recorded


class SavedPlan(Item):
    format: Literal["skyplan-plan"] = PLAN_FILE_FORMAT
    format_version: Literal[2] = PLAN_FILE_VERSION
    created: str
    config_file: str
    config_digest: str  # of the validated text (rendered, for a template): config/loader.py
    refresh: bool  # whether the plan read configs and keys back (no --no-refresh)
    backend: BackendRef
    provider_name: str
    provider_settings: dict[str, Any]
    plan: Plan


def write_plan_file(path: Path, saved: SavedPlan) -> None:
    try:
        write_atomic(path, saved.model_dump_json(indent=1).encode() + b"\n", mode=0o600)
    except OSError as exc:
        raise PlanError(f"cannot write plan file {path}: {exc.strerror}") from None


def check_plan_destination(path: Path, config_file: Path, var_files: list[Path]) -> None:
    """Refuse to write a plan over the configuration, or over any file that is not a plan file.

    `plan --out links.yaml` (a slip of the fingers) would otherwise replace the configuration.
    """
    for source in [config_file, *var_files]:
        try:
            same = path.exists() and source.exists() and path.samefile(source)
        except OSError:
            same = False
        if same:
            what = "the configuration" if source == config_file else "a variable file"
            raise PlanError(f"refusing to write the plan to {path}: it is {what} the plan is made from; choose another file")
    data = config_file.resolve().parent / ".skyplan"
    if data == path.resolve().parent or data in path.resolve().parents:
        raise PlanError(f"refusing to write the plan to {path}: .skyplan holds the state and keys; choose another file")
    if (path.exists() or path.is_symlink()) and not path.is_dir() and not looks_like_plan_file(path):
        raise PlanError(
            f"refusing to write the plan to {path}: the file exists and is not a skyplan plan file; "
            "remove it or choose another file"
        )


def looks_like_plan_file(path: Path) -> bool:
    """Plan files are JSON that names their format; anything else is a configuration."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and PLAN_FILE_FORMAT.encode() in head


def read_plan_file(path: Path) -> SavedPlan:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PlanError(f"{path}: no such plan file") from None
    except OSError as exc:
        raise PlanError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PlanError(f"{path} is not a skyplan plan file (not valid JSON; truncated?)") from None
    if not isinstance(document, dict) or document.get("format") != PLAN_FILE_FORMAT:
        raise PlanError(f"{path} is not a skyplan plan file")
    version = document.get("format_version")
    if version != PLAN_FILE_VERSION:
        earlier = ", from an earlier skyplan" if isinstance(version, int) and 0 < version < PLAN_FILE_VERSION else ""
        raise PlanError(
            f"{path} has plan format version {version!r}{earlier}; this skyplan reads version {PLAN_FILE_VERSION}. "
            "Run skyplan plan --out again"
        )
    try:
        saved = SavedPlan.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise PlanError(f"{path} is a damaged plan file: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    _check_names(saved, path)
    return saved


def _check_names(saved: SavedPlan, path: Path) -> None:
    """Refuse a plan whose resources a configuration could not have named (show and graph print
    them; apply plans again anyway): held to the same name rule as links.yaml, and not quoted."""
    from skyplan.config.rules import name_problem

    named = [("changes", i, c.address, c.type, c.name, c.previous_address) for i, c in enumerate(saved.plan.changes)]
    named += [("drift", i, d.address, d.type, d.name, None) for i, d in enumerate(saved.plan.drift)]
    for section, index, address, kind, name, previous in named:
        problems = [name_problem(name)] if address == f"{kind}.{name}" else [f"its address is not {kind}.NAME"]
        if previous is not None:
            before_kind, _, before_name = previous.partition(".")
            problems.append(None if before_kind == kind and not name_problem(before_name) else "it moved from an address no configuration names")
        problem = next((p for p in problems if p), None)
        if problem:
            raise PlanError(
                f"Saved plan {path} was altered: plan.{section}[{index}] names a resource links.yaml could not name "
                f"({problem}). Nothing was done"
            )


def check_current(saved: SavedPlan, state: State | None, path: Path) -> None:
    """Refuse a plan made against other state, or against this state before it changed."""
    prior = saved.plan.prior_state
    if prior is None:
        if state is not None and state.serial > 0:
            raise PlanError(
                f"Saved plan is stale: it was made when there was no state, and the state is now at serial "
                f"{state.serial}. Run skyplan plan again."
            )
        return
    if state is None:
        raise PlanError(f"Saved plan {path} belongs to state lineage {prior.lineage}, but there is no state here.")
    if state.lineage != prior.lineage:
        raise PlanError(
            f"Saved plan {path} belongs to another state: lineage {prior.lineage}, this state is {state.lineage}."
        )
    if state.serial != prior.serial:
        raise PlanError(
            f"Saved plan is stale: the state changed since it was made (serial {prior.serial}, now {state.serial}). "
            "Run skyplan plan again."
        )


def saved_plan(
    plan: Plan, config_file: Path, digest: str, refresh: bool, backend: BackendRef, provider_name: str, settings: dict[str, Any]
) -> SavedPlan:
    return SavedPlan(
        created=now_iso(),
        config_file=str(config_file.resolve()),
        config_digest=digest,
        refresh=refresh,
        backend=backend,
        provider_name=provider_name,
        provider_settings=settings,
        plan=plan,
    )


def check_made_from(saved: SavedPlan, path: Path, config_file: Path, display: str) -> None:
    """Refuse a plan that names another configuration than the one given to apply it."""
    if Path(saved.config_file) != config_file.resolve():
        raise PlanError(
            f"Saved plan {path} was made from {saved.config_file}, not {display}; "
            f"name the configuration it was made from with --config"
        )


def plan_choices(plan: Plan) -> list[str]:
    """The command-line choices a plan records that it was made with, as options."""
    targets = sorted(t for t in plan.targets if not t.startswith("!"))
    excludes = sorted(t[1:] for t in plan.targets if t.startswith("!"))
    replace = sorted(c.address for c in plan.changes if c.action_reason == "replace_by_request")
    return _as_options(plan.mode, targets, excludes, replace)


def _as_options(mode: str, targets, excludes, replace) -> list[str]:
    return (
        (["--destroy"] if mode == "destroy" else [])
        + [f"--target {t}" for t in sorted(set(targets))]
        + [f"--exclude {e}" for e in sorted(set(excludes))]
        + [f"--replace {r}" for r in sorted(set(replace))]
    )


def check_choices(saved: SavedPlan, path: Path, mode: str, targets, excludes, replace) -> None:
    """Refuse unless the command line restates the choices the plan records.

    Planning again uses the command line's choices, never the file's, so a plan edited into
    another mode or other targets is refused here or by the comparison that follows; this check
    only says it plainly, and tells the honest user what to type.
    """
    given = _as_options(mode, targets, excludes, replace)
    recorded = plan_choices(saved.plan)
    if given != recorded:
        said = " ".join(recorded) or "no --destroy, --target, --exclude or --replace"
        raise PlanError(
            f"Saved plan {path} says it was made with {said}, but this command gives "
            f"{' '.join(given) or 'none of them'}: a plan file decides nothing, so apply it with the "
            f"choices it was made with (skyplan apply {' '.join([*recorded, str(path)])}). If you did not "
            "make such a plan, it was altered: do not apply it. Nothing was done"
        )


def check_same(saved: SavedPlan, path: Path, display: str, plan: Plan, provider_name: str, settings: dict[str, Any]) -> None:
    """Refuse unless planning again from the configuration and the state gave the saved plan."""
    difference = _first_difference(saved, plan, provider_name, settings)
    if difference:
        raise PlanError(
            f"Saved plan {path} was altered or no longer matches {display} and the state: {difference}. "
            "Nothing was done; run skyplan plan again"
        )


def _first_difference(saved: SavedPlan, plan: Plan, provider_name: str, settings: dict[str, Any]) -> str | None:
    if saved.provider_name != provider_name:
        return f"the plan names provider {saved.provider_name!r}, the configuration {provider_name!r}"
    for key in sorted(set(saved.provider_settings) | set(settings)):
        if saved.provider_settings.get(key) != settings.get(key):
            return f"provider setting {key!r} differs"
    if saved.plan == plan:
        return None  # the usual case, and the quick comparison
    # Values read from JSON may differ in type only (a list for a tuple): compare as JSON.
    recorded = saved.plan.model_dump(mode="json")
    fresh = plan.model_dump(mode="json")
    if recorded == fresh:
        return None
    recorded_changes = {c["address"]: c for c in recorded["changes"]}
    fresh_changes = {c["address"]: c for c in fresh["changes"]}
    for address in sorted(set(recorded_changes) | set(fresh_changes)):
        have, want = recorded_changes.get(address), fresh_changes.get(address)
        if have is None:
            return f"a new plan has a change for {address}, the saved plan has none"
        if want is None:
            return f"the saved plan has a change for {address}, a new plan has none"
        if have != want:
            field = next((k for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)), "")
            return f"the change for {address} differs ({field})"
    field = next((k for k in sorted(set(recorded) | set(fresh)) if recorded.get(k) != fresh.get(k)), "")
    return f"the plan's {field} differs"
