"""The apply engine against a fake provider: every way a provider can misbehave is recorded.

The WireGuard provider never raises mid-batch or forgets a result, so these branches of
skyplan/apply.py would go untested without a provider written to misbehave on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skyplan.apply import apply_plan
from skyplan.plan.model import Action, Plan, ResourceChange
from skyplan.sdk import ApplyRequest, Provider, ResourceResult, WorkspacePaths
from skyplan.state.model import State
from skyplan.state.store import LockInfo, StateStore, check_successor


class MemoryStateStore(StateStore):
    """A store that keeps every write, so a test sees each checkpoint."""

    def __init__(self) -> None:
        self.writes: list[State] = []

    def describe(self) -> str:
        return "memory"

    def read(self) -> State | None:
        return self.writes[-1] if self.writes else None

    def write(self, state: State) -> None:
        current = self.read()
        check_successor(current.serial if current else None, current.lineage if current else None, state, "memory")
        self.writes.append(state)

    def lock(self, operation: str, timeout: float) -> LockInfo:
        return LockInfo.new(operation)

    def unlock(self, lock_id: str) -> None:
        pass


class FakeProvider(Provider):
    """Yields what `script` returns for the request: results, or an exception to raise after them."""

    name = "fake"
    settings_model = None  # type: ignore[assignment]

    def __init__(self, script: Callable[[ApplyRequest], Iterator[ResourceResult]]):
        super().__init__(None, WorkspacePaths.for_config(Path("/nonexistent/links.yaml")))  # type: ignore[arg-type]
        self.script = script
        self.requests: list[ApplyRequest] = []

    def validate(self, request):  # pragma: no cover - not used by the engine
        return []

    def read(self, request):  # pragma: no cover
        raise NotImplementedError

    def status(self, request):  # pragma: no cover
        raise NotImplementedError

    def apply(self, request: ApplyRequest) -> Iterator[ResourceResult]:
        self.requests.append(request)
        yield from self.script(request)


def _create(kind: str, name: str, **attributes) -> ResourceChange:
    return ResourceChange(address=f"{kind}.{name}", type=kind, name=name, action=Action.CREATE, after=attributes)


PLAN = Plan(
    changes=[
        _create("cluster", "a", endpoint="192.0.2.1:51820", subnets=[]),
        _create("cluster", "b", endpoint="192.0.2.2:51820", subnets=[]),
        _create("link", "ab", source="a", target="b"),
    ]
)
ADDRESSES = ["cluster.a", "cluster.b", "link.ab"]


def _run(script, checkpoint_seconds: float = 1.0):
    store = MemoryStateStore()
    provider = FakeProvider(script)
    seen: list[tuple[str, bool]] = []
    outcome = apply_plan(
        PLAN, None, store, provider, on_result=lambda c, r: seen.append((c.address, r.ok)), checkpoint_seconds=checkpoint_seconds
    )
    return outcome, store, seen


def _ok(address: str) -> ResourceResult:
    return ResourceResult(address, ok=True, computed={"id": address} if address.startswith("cluster") else {})


def test_every_change_is_marked_pending_before_the_provider_acts() -> None:
    def script(request):
        intent = store_seen.read()
        assert {r.address: r.pending for r in intent.resources} == dict.fromkeys(ADDRESSES, "create")
        assert intent.interrupted is not None
        yield from map(_ok, ADDRESSES)

    store_seen = MemoryStateStore()
    provider = FakeProvider(script)
    outcome = apply_plan(PLAN, None, store_seen, provider)
    assert not outcome.failed
    final = store_seen.read()
    assert final.interrupted is None
    assert all(r.pending is None for r in final.resources)
    assert {r.address: r.computed for r in final.resources}["cluster.a"] == {"id": "cluster.a"}


def test_a_provider_exception_fails_the_rest_and_keeps_what_finished() -> None:
    def script(request):
        yield _ok("cluster.a")
        raise RuntimeError("disk on fire")

    outcome, store, seen = _run(script)
    assert seen == [("cluster.a", True), ("cluster.b", False), ("link.ab", False)]  # a line for each
    failed = {r.address: r.error for r in outcome.failed}
    assert failed == dict.fromkeys(["cluster.b", "link.ab"], "provider error: RuntimeError: disk on fire")
    final = store.read()
    by_address = final.by_address()
    assert by_address["cluster.a"].status.phase == "INIT" and by_address["cluster.a"].pending is None
    assert by_address["cluster.b"].status.phase == "FAILED" and by_address["cluster.b"].pending is None
    assert by_address["cluster.b"].status.reason == "provider error: RuntimeError: disk on fire"
    assert final.interrupted is None


def test_a_missing_result_is_a_failure_that_is_reported() -> None:
    outcome, store, seen = _run(lambda request: iter([_ok("cluster.a"), _ok("link.ab")]))
    assert seen == [("cluster.a", True), ("link.ab", True), ("cluster.b", False)]
    assert [(r.address, r.error) for r in outcome.failed] == [("cluster.b", "the provider reported no result")]
    assert store.read().by_address()["cluster.b"].status.phase == "FAILED"


def test_results_for_unplanned_addresses_and_repeats_are_ignored() -> None:
    def script(request):
        yield _ok("cluster.zz")
        yield from map(_ok, ADDRESSES)
        yield ResourceResult.failed("cluster.a", "second result for the same change")

    outcome, store, seen = _run(script)
    assert seen == [(a, True) for a in ADDRESSES]
    assert not outcome.failed
    assert "cluster.zz" not in store.read().by_address()


def test_an_interruption_between_results_leaves_the_rest_pending() -> None:
    def script(request):
        yield _ok("cluster.a")
        raise KeyboardInterrupt

    store = MemoryStateStore()
    with pytest.raises(KeyboardInterrupt):
        apply_plan(PLAN, None, store, FakeProvider(script))
    final = store.read()
    pending = {r.address: r.pending for r in final.resources}
    assert pending == {"cluster.a": None, "cluster.b": "create", "link.ab": "create"}
    assert final.interrupted is not None  # the next plan says an apply was interrupted


def test_results_are_checkpointed_as_they_arrive() -> None:
    outcome, store, seen = _run(lambda request: map(_ok, ADDRESSES), checkpoint_seconds=0.0)
    # intent, one write per result, and the final write
    assert len(store.writes) == 1 + len(ADDRESSES) + 1
    assert [w.serial for w in store.writes] == sorted({w.serial for w in store.writes})


def test_what_a_slow_provider_finished_is_on_disk_while_it_works_on_the_next(monkeypatch) -> None:
    import skyplan.apply as engine

    clock = [100.0]
    monkeypatch.setattr(engine.time, "monotonic", lambda: clock[0])
    store = MemoryStateStore()
    on_disk_before = {}

    def slow(request):
        for address in ADDRESSES:
            clock[0] += 5.0  # each change takes 5 s (a gateway, a reload)
            on_disk_before[address] = {r.address: r.pending for r in store.writes[-1].resources}
            yield _ok(address)

    apply_plan(PLAN, None, store, FakeProvider(slow))
    # While the provider worked on the link, both clusters were recorded done (not pending).
    assert on_disk_before["link.ab"] == {"cluster.a": None, "cluster.b": None, "link.ab": "create"}
    assert len(store.writes) == 1 + len(ADDRESSES) + 1


def test_checkpoints_are_further_apart_when_writing_the_state_takes_long(monkeypatch) -> None:
    import skyplan.apply as engine

    clock = [100.0]
    monkeypatch.setattr(engine.time, "monotonic", lambda: clock[0])

    class SlowStore(MemoryStateStore):
        def write(self, state):
            clock[0] += 0.5  # a state that takes half a second to write
            super().write(state)

    def trickle(request):
        for address in ADDRESSES:
            clock[0] += 0.6  # a result every 0.6 s: the third comes 1.2 s after the first
            yield _ok(address)

    store = SlowStore()
    apply_plan(PLAN, None, store, FakeProvider(trickle), checkpoint_seconds=1.0)
    # With writes of 0.5 s, checkpoints are 2 s apart: the three results (1.2 s) are written by
    # the final write alone, after the intent. At a 1 s interval the third would have been a checkpoint.
    assert len(store.writes) == 2
    monkeypatch.setattr(engine._Interval, "SHARE", 0)
    store = SlowStore()
    apply_plan(PLAN, None, store, FakeProvider(trickle), checkpoint_seconds=1.0)
    assert len(store.writes) == 3


def test_the_request_is_in_dependency_order_with_the_world_after() -> None:
    provider = FakeProvider(lambda request: map(_ok, ADDRESSES))
    apply_plan(PLAN, None, MemoryStateStore(), provider)
    (request,) = provider.requests
    assert [(c.address, c.action) for c in request.changes] == [(a, "create") for a in ADDRESSES]
    assert sorted(request.world) == ADDRESSES


def test_no_cycle_collection_runs_while_the_provider_applies_in_a_command(monkeypatch) -> None:
    import gc

    from skyplan import collector

    collecting = []

    def script(request):
        collecting.append(gc.isenabled())
        yield from map(_ok, ADDRESSES)

    was = gc.isenabled()
    gc.enable()
    try:
        # A program that embeds skyplan keeps its collector running through an apply.
        apply_plan(PLAN, None, MemoryStateStore(), FakeProvider(script))
        assert collecting == [True]
        # A console-script process (cli/entry.py) pauses it.
        monkeypatch.setattr(collector, "_SETTLING", True)
        apply_plan(PLAN, None, MemoryStateStore(), FakeProvider(script))
        assert collecting == [True, False] and gc.isenabled()  # as it was before, after
        gc.disable()
        apply_plan(PLAN, None, MemoryStateStore(), FakeProvider(script))
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        (gc.enable if was else gc.disable)()


def test_dependency_order_is_deletes_of_links_then_of_clusters_then_clusters_then_links_each_by_address() -> None:
    import random

    from skyplan.apply import dependency_order

    kinds = [(t, a) for t in ("cluster", "link") for a in (Action.CREATE, Action.DELETE, Action.UPDATE, Action.REPLACE)]
    changes = [
        ResourceChange(address=f"{t}.{name}", type=t, name=name, action=a)
        for i, (t, a) in enumerate(kinds * 5)
        for name in [f"n{(i * 7919) % 97:02d}"]
    ]
    rank = lambda c: (0 if c.type == "link" else 1, c.address) if c.action is Action.DELETE else (2 if c.type == "cluster" else 3, c.address)  # noqa: E731
    for seed in range(5):
        shuffled = random.Random(seed).sample(changes, len(changes))
        assert dependency_order(shuffled) == sorted(changes, key=rank)


def test_a_provider_change_is_the_dataclass_its_fields_make() -> None:
    from skyplan.apply import _new_change
    from skyplan.sdk import Change, ResourceView

    after = ResourceView("link", "l", {"source": "a", "target": "b"}, {})
    made = _new_change("link.l", "create", None, after)
    assert made == Change("link.l", "create", None, after) and repr(made) == repr(Change("link.l", "create", None, after))
    with pytest.raises(AttributeError):
        made.action = "delete"  # frozen, as every request is
