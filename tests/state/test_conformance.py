"""What every state store promises (skyplan.state.store.StateStore), asserted against each."""

from __future__ import annotations

import threading
import time

import pytest

from skyplan.errors import LockError, StateError
from skyplan.state.model import STATE_FORMAT_VERSION

from .conftest import sample_state

# -- read / write -------------------------------------------------------------------------------


def test_empty_store_reads_none(store_kit):
    assert store_kit.new().read() is None


def test_write_then_read_round_trips(store_kit):
    state = sample_state(serial=1)
    store_kit.new().write(state)
    assert store_kit.new().read() == state


def test_serial_must_rise(store_kit):
    first = sample_state(serial=5)
    store = store_kit.new()
    store.write(first)
    for serial in (5, 4, 0):
        with pytest.raises(StateError, match=f"refusing to write state serial {serial}"):
            store_kit.new().write(first.model_copy(update={"serial": serial, "resources": []}))
    assert store_kit.new().read() == first
    higher = first.model_copy(update={"serial": 6, "resources": []})
    store.write(higher)
    assert store_kit.new().read() == higher


def test_lineage_is_fixed(store_kit):
    ours = sample_state(serial=1)
    store_kit.new().write(ours)
    foreign = sample_state(serial=9)
    assert foreign.lineage != ours.lineage
    with pytest.raises(StateError, match=f"belongs to lineage {ours.lineage}"):
        store_kit.new().write(foreign)
    assert store_kit.new().read() == ours


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": STATE_FORMAT_VERSION + 1, "serial": 3, "lineage": "l"}, "written by a newer skyplan"),
        ({"hello": "world"}, "is not a skyplan state"),
        ({"version": STATE_FORMAT_VERSION, "serial": 3, "lineage": "l", "resources": "none"}, "is damaged: resources"),
    ],
    ids=["newer", "foreign", "damaged"],
)
def test_unreadable_stored_state_is_an_error(store_kit, document, message):
    store_kit.plant(document)
    with pytest.raises(StateError, match=message):
        store_kit.new().read()
    assert store_kit.stored() == document


@pytest.mark.parametrize(
    "document",
    [{"version": STATE_FORMAT_VERSION + 1, "serial": 3, "lineage": "l"}, {"hello": "world"}],
    ids=["newer", "foreign"],
)
def test_state_it_cannot_read_is_never_overwritten(store_kit, document):
    store_kit.plant(document)
    with pytest.raises(StateError):
        store_kit.new().write(sample_state(serial=100, lineage="l"))
    assert store_kit.stored() == document


# -- locking ------------------------------------------------------------------------------------


def test_second_lock_fails_within_timeout_naming_holder(store_kit):
    holder = store_kit.new().lock("apply", timeout=0)
    started = time.monotonic()
    with pytest.raises(LockError) as caught:
        store_kit.new().lock("plan", timeout=0.3)
    waited = time.monotonic() - started
    assert 0.3 <= waited < 2.3
    assert holder.id in str(caught.value)
    assert holder.who in str(caught.value)
    assert "operation apply" in str(caught.value)


def test_second_lock_from_another_process_fails_naming_holder(store_kit, lock_holder):
    holder = lock_holder()
    with pytest.raises(LockError) as caught:
        store_kit.new().lock("plan", timeout=0)
    assert holder.info.id in str(caught.value)
    assert f"(pid {holder.pid})" in str(caught.value)


def test_lock_waits_for_a_holder_that_releases_in_time(store_kit, lock_holder):
    holder = lock_holder()
    threading.Timer(0.5, holder.release).start()
    started = time.monotonic()
    info = store_kit.new().lock("apply", timeout=10)
    waited = time.monotonic() - started
    assert 0.4 <= waited < 5
    assert info.id != holder.info.id
    assert holder.process.wait(10) == 0


def test_unlock_lets_the_next_run_in(store_kit):
    first = store_kit.new()
    info = first.lock("apply", timeout=0)
    first.unlock(info.id)
    second = store_kit.new()
    second.unlock(second.lock("plan", timeout=0).id)
    again = first.lock("apply", timeout=0)  # the same client can lock again after unlocking
    assert again.id != info.id


def test_close_releases_the_lock(store_kit):
    first = store_kit.new()
    first.lock("apply", timeout=0)
    first.close()
    store_kit.new().lock("plan", timeout=0)


def test_lock_of_a_killed_process_is_released(store_kit, lock_holder):
    holder = lock_holder()
    holder.kill()
    started = time.monotonic()
    store_kit.new().lock("apply", timeout=5)
    assert time.monotonic() - started < 2


def test_force_unlock_clears_the_lock_left_by_a_killed_process(store_kit, lock_holder):
    holder = lock_holder()
    holder.kill()
    store = store_kit.new()
    store.unlock(holder.info.id)
    with pytest.raises(LockError, match="the state is not locked"):
        store.unlock(holder.info.id)  # nothing is left to unlock
    store.lock("apply", timeout=0)


def test_unlock_of_unknown_id_is_an_error(store_kit):
    store = store_kit.new()
    with pytest.raises(LockError, match="no lock with ID not-a-lock.*the state is not locked"):
        store.unlock("not-a-lock")
    held = store_kit.new().lock("apply", timeout=0)
    with pytest.raises(LockError, match=f"no lock with ID not-a-lock.*the current lock is {held.id}"):
        store.unlock("not-a-lock")
    with pytest.raises(LockError):
        store_kit.new().lock("plan", timeout=0)  # the real lock is untouched
