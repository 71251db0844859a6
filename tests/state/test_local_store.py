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


def _no_space(*args, **kwargs):
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_lock_info_leaves_no_lock(tmp_path, monkeypatch):
    store = FileStateStore(tmp_path / ".skyplan")
    with monkeypatch.context() as patch:
        patch.setattr("skyplan.state.local.os.pwrite", _no_space)
        with pytest.raises(StateError, match=r"^cannot lock the state in .*: writing the lock info to .*state\.json\.lock "
                           r"failed \(No space left on device\); nothing was changed and no lock is held$"):
            store.lock("apply", timeout=0)
    # The OS lock was given back and no lock info names a holder that does not hold it.
    assert (tmp_path / ".skyplan/state.json.lock").read_bytes() == b""
    other = FileStateStore(tmp_path / ".skyplan")
    info = other.lock("apply", timeout=0)
    other.unlock(info.id)
    store.close()  # holds nothing, releases nothing
    with pytest.raises(LockError, match="the state is not locked"):
        store.unlock("00000000-0000-0000-0000-000000000000")


def test_a_short_lock_info_write_is_finished(tmp_path, monkeypatch):
    import os

    real = os.pwrite
    monkeypatch.setattr("skyplan.state.local.os.pwrite", lambda fd, data, offset: real(fd, data[:7], offset))
    store = FileStateStore(tmp_path / ".skyplan")
    info = store.lock("apply", timeout=0)
    assert json.loads((tmp_path / ".skyplan/state.json.lock").read_text())["id"] == info.id
    store.unlock(info.id)


def test_unreadable_lock_info_is_a_clear_force_unlock_error(tmp_path):
    (tmp_path / ".skyplan/state.json.lock").mkdir(parents=True)
    with pytest.raises(LockError, match=r"^cannot unlock the state in .*: Is a directory \(.*state\.json\.lock\)$"):
        FileStateStore(tmp_path / ".skyplan").unlock("00000000-0000-0000-0000-000000000000")
    with pytest.raises(StateError, match=r"^cannot lock the state in .*: Is a directory$"):
        FileStateStore(tmp_path / ".skyplan").lock("apply", timeout=0)


def test_the_backup_is_the_previous_state_file_as_it_was(tmp_path):
    first = sample_state(serial=1)
    FileStateStore(tmp_path / ".skyplan").write(first)
    state_file = tmp_path / ".skyplan/state.json"
    before, inode = state_file.read_bytes(), state_file.stat().st_ino
    run = FileStateStore(tmp_path / ".skyplan")
    run.write(first.model_copy(update={"serial": 2}))
    assert run.backup_path.read_bytes() == before
    assert run.backup_path.stat().st_ino == inode  # kept under the backup's name, not read and written again
    assert run.backup_path.stat().st_nlink == 1 and mode(run.backup_path) == 0o600
    assert json.loads(state_file.read_text())["serial"] == 2


def test_a_state_file_shared_or_widened_is_copied_into_the_backup(tmp_path):
    first = sample_state(serial=1)
    FileStateStore(tmp_path / ".skyplan").write(first)
    state_file = tmp_path / ".skyplan/state.json"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.hardlink_to(state_file)  # the same file under a name outside the state folder
    before = elsewhere.read_bytes()
    run = FileStateStore(tmp_path / ".skyplan")
    run.write(first.model_copy(update={"serial": 2}))
    assert run.backup_path.read_bytes() == before
    assert run.backup_path.stat().st_ino != elsewhere.stat().st_ino, "no second name of a file linked from outside"
    assert elsewhere.read_bytes() == before and elsewhere.stat().st_nlink == 1

    state_file.chmod(0o644)
    widened = state_file.read_bytes()
    next_run = FileStateStore(tmp_path / ".skyplan")
    next_run.write(first.model_copy(update={"serial": 3}))
    assert next_run.backup_path.read_bytes() == widened and mode(next_run.backup_path) == 0o600


def test_a_newer_state_written_meanwhile_is_refused_by_its_full_document(tmp_path):
    run = FileStateStore(tmp_path / ".skyplan")
    run.write(sample_state(serial=1))
    (tmp_path / ".skyplan/state.json").write_text(json.dumps({"version": 99, "serial": 5, "lineage": "x", "resources": []}))
    with pytest.raises(StateError, match="newer skyplan"):
        run.write(sample_state(serial=2))
