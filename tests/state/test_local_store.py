"""Where the local file store differs from the others: files, modes, backups, OS locks."""

from __future__ import annotations

import json
import stat

import pytest

from skyplan.errors import LockError, StateError
from skyplan.state.local import FileStateStore

from .conftest import LockHolder, local_kit, sample_state


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private(tmp_path):
    store = FileStateStore(tmp_path / ".skyplan")
    store.lock("apply", timeout=0)
    store.write(sample_state(serial=1))
    store.write(sample_state(serial=2, lineage=store.read().lineage))
    store.close()
    assert mode(tmp_path / ".skyplan") == 0o700
    for name in ("state.json", "state.json.backup", "state.json.lock"):
        assert mode(tmp_path / ".skyplan" / name) == 0o600, name


def test_backup_holds_the_state_from_before_the_run(tmp_path):
    first = sample_state(serial=1)
    run = FileStateStore(tmp_path / ".skyplan")
    run.write(first)
    assert not run.backup_path.exists()  # nothing came before the first state
    for serial in (2, 3):
        run.write(first.model_copy(update={"serial": serial}))
    assert json.loads(run.backup_path.read_text())["serial"] == 1  # written once, not per write

    next_run = FileStateStore(tmp_path / ".skyplan")
    next_run.write(first.model_copy(update={"serial": 4}))
    assert json.loads(run.backup_path.read_text())["serial"] == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b'{"version": 1, "serial": 3, "lineage": "l", "resources": [', "is not valid JSON"),
        (b"\xff\xfe garbage", "is not valid JSON"),
    ],
    ids=["empty", "truncated", "binary"],
)
def test_corrupt_file_is_an_error_and_left_alone(tmp_path, content, message):
    data_dir = tmp_path / ".skyplan"
    data_dir.mkdir()
    (data_dir / "state.json").write_bytes(content)
    with pytest.raises(StateError, match=message):
        FileStateStore(data_dir).read()
    assert (data_dir / "state.json").read_bytes() == content


def test_force_unlock_refuses_a_lock_held_by_a_running_process(tmp_path):
    # An OS lock cannot be taken from a live process: the holder must be stopped instead.
    kit = local_kit(tmp_path)
    holder = LockHolder(kit.spec)
    try:
        with pytest.raises(LockError, match="held by a running process"):
            kit.new().unlock(holder.info.id)
        with pytest.raises(LockError, match=holder.info.id):
            kit.new().lock("plan", timeout=0)
    finally:
        holder.close()
        kit.close_all()
