"""Saved plan files: `plan --out` writes one, `apply PLAN` applies exactly it, or refuses.

A plan file holds the plan and what is needed to carry it out (provider settings, where the
state lives). It never holds a secret: keys are not in plans, and a backend URL is stored with
its password removed.
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


class SavedPlan(Item):
    format: Literal["skyplan-plan"] = PLAN_FILE_FORMAT
    format_version: Literal[1] = 1
    created: str
    config_file: str
    backend: BackendRef
    provider_name: str
    provider_settings: dict[str, Any]
    plan: Plan


def write_plan_file(path: Path, saved: SavedPlan) -> None:
    try:
        write_atomic(path, saved.model_dump_json(indent=1).encode() + b"\n", mode=0o600)
    except OSError as exc:
        raise PlanError(f"cannot write plan file {path}: {exc.strerror}") from None


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
    if document.get("format_version") != 1:
        raise PlanError(f"{path} has plan format version {document.get('format_version')!r}; this skyplan reads version 1")
    try:
        return SavedPlan.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise PlanError(f"{path} is a damaged plan file: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


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


def saved_plan(plan: Plan, config_file: Path, backend: BackendRef, provider_name: str, settings: dict[str, Any]) -> SavedPlan:
    return SavedPlan(
        created=now_iso(),
        config_file=str(config_file.resolve()),
        backend=backend,
        provider_name=provider_name,
        provider_settings=settings,
        plan=plan,
    )
