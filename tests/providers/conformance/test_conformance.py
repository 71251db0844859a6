"""The contract every provider mode keeps, whatever it manages and however it reaches it.

Read of an empty world; create, update and delete through apply with one result per change;
a repeated apply that changes nothing; drift and damage that `read` reports, never raises;
the shape of status, plan, validate and upgrade. Run for every mode in modes.MODES.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skyplan.config.models import ClusterSpec
from skyplan.plan.desired import cluster_attributes
from skyplan.sdk import (
    ApplyRequest,
    Change,
    PlanRequest,
    PlanResponse,
    Provider,
    ReadMemo,
    ReadRequest,
    ReadResponse,
    ResourceView,
    StatusRequest,
    StatusResponse,
    ValidateRequest,
    ValidateResponse,
)
from tests.providers.conformance.modes import MODES, Mode

CLUSTERS = [("a", "192.0.2.1:51820", ["10.1.0.0/16"]), ("b", "192.0.2.2:51820", ["10.2.0.0/16"]), ("c", "192.0.2.3:51820", [])]
LINKS = [("a-b", "a", "b"), ("b-c", "b", "c")]


@pytest.fixture(params=MODES, ids=lambda mode: mode.id)
def mode(request) -> Mode:
    return request.param


@pytest.fixture
def provider(mode: Mode, tmp_path: Path) -> Provider:
    root = tmp_path / "workspace"
    root.mkdir()
    return mode.make(root)


def cluster(mode: Mode, provider: Provider, name: str, endpoint: str, subnets: list[str]) -> ResourceView:
    """A cluster as the core hands it to the provider: its attributes as planning makes them."""
    spec = ClusterSpec(name=name, endpoint=endpoint, subnets=subnets, **mode.cluster_fields(name))
    return ResourceView("cluster", name, cluster_attributes(spec, type(provider), provider.settings))


def link(name: str, source: str, target: str) -> ResourceView:
    return ResourceView("link", name, {"source": source, "target": target})


def desired(mode: Mode, provider: Provider) -> dict[str, ResourceView]:
    views = [cluster(mode, provider, *c) for c in CLUSTERS] + [link(*item) for item in LINKS]
    return {view.address: view for view in views}


def with_planned(provider: Provider, world: dict[str, ResourceView]) -> dict[str, ResourceView]:
    """The world with what the provider plans to compute filled in, as the core does before apply."""
    response = provider.plan(PlanRequest(resources=list(world.values())))
    assert isinstance(response, PlanResponse) and not response.diagnostics
    return {a: v._replace(computed={**v.computed, **response.planned.get(a, {})}) for a, v in world.items()}


def apply(provider: Provider, changes: list[Change], world: dict[str, ResourceView]) -> dict[str, ResourceView]:
    """Apply `changes`; assert one ok result per change; return the world with what it computed."""
    results = list(provider.apply(ApplyRequest(changes=changes, world=world)))
    assert sorted(r.address for r in results) == sorted(c.address for c in changes)  # one each, no others
    for result in results:
        assert result.ok, (result.address, result.error)
        assert result.error is None and not [d for d in result.diagnostics if d.severity == "error"]
    computed = {r.address: r.computed for r in results}
    return {a: v._replace(computed={**v.computed, **computed.get(a, {})}) for a, v in world.items()}


def create_all(mode: Mode, provider: Provider) -> dict[str, ResourceView]:
    world = with_planned(provider, desired(mode, provider))
    ordered = sorted(world.values(), key=lambda v: (v.type != "cluster", v.address))
    return apply(provider, [Change(v.address, "create", None, v) for v in ordered], world)


def read(provider: Provider, world: dict[str, ResourceView]) -> ReadResponse:
    response = provider.read(ReadRequest(resources=list(world.values())))
    assert isinstance(response, ReadResponse)
    return response


def test_reading_an_empty_world_finds_nothing(provider: Provider) -> None:
    response = read(provider, {})
    assert response.readings == {} and response.diagnostics == []


def test_reading_what_the_state_records_but_is_not_there_reports_it_without_raising(
    mode: Mode, provider: Provider, tmp_path: Path
) -> None:
    # A state applied elsewhere, read in a workspace where none of it exists (a lost folder).
    world = create_all(mode, provider)
    empty = tmp_path / "empty"
    empty.mkdir()
    response = read(mode.make(empty), world)
    assert not [d for d in response.diagnostics if d.severity == "error"]
    assert {"cluster.a", "cluster.b", "cluster.c"} <= set(response.readings)


def test_create_gives_every_computed_value_and_reads_back_clean(mode: Mode, provider: Provider) -> None:
    world = create_all(mode, provider)
    for view in world.values():
        for name in type(provider).computed_attributes.get(view.type, ()):
            assert name in view.computed, (view.address, name)
        model = type(provider).computed_models.get(view.type)
        if model is not None:
            model.model_validate(view.computed)
    response = read(provider, world)
    assert response.readings == {} and response.diagnostics == []


def test_applying_the_same_creates_again_changes_nothing(mode: Mode, provider: Provider) -> None:
    # A retry after a crash: the provider finds its own work and converges, computed values kept.
    first = create_all(mode, provider)
    ordered = sorted(first.values(), key=lambda v: (v.type != "cluster", v.address))
    second = apply(provider, [Change(v.address, "create", None, v) for v in ordered], first)
    assert {a: v.computed for a, v in second.items()} == {a: v.computed for a, v in first.items()}
    assert read(provider, second).readings == {}


def test_update_in_place_then_reads_back_clean(mode: Mode, provider: Provider) -> None:
    world = create_all(mode, provider)
    before = world["cluster.a"]
    after = before._replace(attributes={**before.attributes, "endpoint": "192.0.2.9:51820"})
    world = apply(provider, [Change("cluster.a", "update", before, after)], {**world, "cluster.a": after})
    assert world["cluster.a"].computed == before.computed  # an update keeps what was computed
    response = read(provider, world)
    assert response.readings == {} and response.diagnostics == []
    # What the world looked like before the update is now drift.
    stale = read(provider, {**world, "cluster.a": before})
    assert "cluster.a" in stale.readings or "link.a-b" in stale.readings


def test_delete_a_link_then_a_cluster(mode: Mode, provider: Provider) -> None:
    world = create_all(mode, provider)
    gone = world.pop("link.b-c")
    world = apply(provider, [Change("link.b-c", "delete", gone, None)], world)
    assert read(provider, world).readings == {}
    c = world.pop("cluster.c")
    world = apply(provider, [Change("cluster.c", "delete", c, None)], world)
    response = read(provider, world)
    assert response.readings == {} and response.diagnostics == []
    # A deleted cluster read as if it still existed is missing, not an error.
    response = read(provider, {**world, "cluster.c": c})
    assert "cluster.c" in response.readings and not response.diagnostics


def test_read_finds_drift(mode: Mode, provider: Provider) -> None:
    world = create_all(mode, provider)
    mode.drift(provider, world["cluster.a"])
    response = read(provider, world)
    assert response.diagnostics == []
    assert {"cluster.a", "link.a-b"} & set(response.readings)
    for address, reading in response.readings.items():
        assert reading.address == address and reading.expected != reading.found


class _Memo(ReadMemo):
    """The core's sealed store of a world's memo (state/refreshed.py), kept in memory here."""

    def __init__(self) -> None:
        self.body: bytes | None = None

    def recall(self) -> bytes | None:
        return self.body

    def keep(self, body: bytes) -> None:
        self.body = body


def _end_command(provider: Provider) -> None:
    """What the end of a command does to a provider (Workspace.close): each read is its own run."""
    close = getattr(provider, "close", None)
    if close is not None:
        close()


def _clean_reads(provider: Provider, world: dict[str, ResourceView]) -> _Memo:
    """Two reads of a clean world, each its own command, with one memo: the second may trust
    what the first kept. The memo, for the read after the world is disturbed."""
    memo = _Memo()
    for _ in range(2):
        response = provider.read(ReadRequest(resources=list(world.values()), memo=memo))
        assert response.readings == {} and response.diagnostics == []
        _end_command(provider)
    return memo


def test_a_memo_of_a_clean_read_hides_no_drift(mode: Mode, provider: Provider) -> None:
    world = create_all(mode, provider)
    memo = _clean_reads(provider, world)
    mode.drift(provider, world["cluster.a"])
    response = provider.read(ReadRequest(resources=list(world.values()), memo=memo))
    assert response.diagnostics == [] and {"cluster.a", "link.a-b"} & set(response.readings)


@pytest.mark.parametrize(
    "mode, damage", [(m, d) for m in MODES for d in sorted(m.damages)], ids=[f"{m.id}-{d}" for m in MODES for d in sorted(m.damages)]
)
def test_a_memo_of_a_clean_read_hides_no_damage(mode: Mode, damage: str, tmp_path: Path) -> None:
    root = tmp_path / "workspace"
    root.mkdir()
    provider = mode.make(root)
    world = create_all(mode, provider)
    memo = _clean_reads(provider, world)
    mode.damages[damage](provider, world["cluster.b"])
    response = provider.read(ReadRequest(resources=list(world.values()), memo=memo))
    assert [d for d in response.diagnostics if d.severity == "error"], response


@pytest.mark.parametrize(
    "mode, damage", [(m, d) for m in MODES for d in sorted(m.damages)], ids=[f"{m.id}-{d}" for m in MODES for d in sorted(m.damages)]
)
def test_read_reports_damage_as_a_diagnostic_and_never_raises(mode: Mode, damage: str, tmp_path: Path) -> None:
    root = tmp_path / "workspace"
    root.mkdir()
    provider = mode.make(root)
    world = create_all(mode, provider)
    mode.damages[damage](provider, world["cluster.b"])
    response = read(provider, world)
    errors = [d for d in response.diagnostics if d.severity == "error"]
    assert errors, response
    assert all(str(d) and "\n" not in str(d) for d in errors)  # one line each, for the core to show


def test_status_has_the_documented_shape(mode: Mode, provider: Provider) -> None:
    world = create_all(mode, provider)
    response = provider.status(StatusRequest(resources=list(world.values())))
    assert isinstance(response, StatusResponse)
    assert set(response.statuses) <= set(world)
    for report in response.statuses.values():
        assert report.phase in ("INIT", "ACTIVE", "FAILED")
        assert isinstance(report.conditions, list) and all(isinstance(c, dict) for c in report.conditions)
        if report.phase == "FAILED":  # skyctl shows why: the failing condition's message
            assert any(c.get("status") == "False" and c.get("message") for c in report.conditions)
    assert isinstance(response.diagnostics, list)


def test_validate_answers_with_diagnostics(mode: Mode, provider: Provider) -> None:
    world = desired(mode, provider)
    response = provider.validate(
        ValidateRequest(
            clusters=[v for v in world.values() if v.type == "cluster"], links=[v for v in world.values() if v.type == "link"]
        )
    )
    assert isinstance(response, ValidateResponse) and response.diagnostics == []


def test_upgrade_of_a_current_resource_keeps_it(mode: Mode, provider: Provider) -> None:
    world = create_all(mode, provider)
    for view in world.values():
        upgraded = provider.upgrade(view, type(provider).schema_version)
        assert (upgraded.type, upgraded.name, upgraded.attributes, upgraded.computed) == (
            view.type, view.name, view.attributes, view.computed
        )
