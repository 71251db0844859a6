"""skyplan/atomic.py: files reached from a trusted folder never through a symlink, folders made
with exactly their mode. Each attack plants a real symlink and checks what is outside."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from skyplan import atomic
from skyplan.errors import UnsafePathError


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def tree(folder: Path) -> dict[str, tuple]:
    """Everything in `folder`, its own mode included: what an attack must leave as it was."""
    found = {".": (mode(folder),)}
    for path in sorted(folder.rglob("*")):
        info = os.lstat(path)
        content = path.read_bytes() if stat.S_ISREG(info.st_mode) else os.readlink(path) if path.is_symlink() else None
        found[str(path.relative_to(folder))] = (stat.S_IMODE(info.st_mode), info.st_mtime_ns, content)
    return found


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    return tmp_path / "ws"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the workspace that links point to; holds a file the attacker wants."""
    folder = tmp_path / "outside"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    (folder / "secret").write_text("outside secret\n")
    (folder / "wgsky0.conf").write_text("outside config\n")
    return folder


@pytest.fixture
def umask():
    """Set the process umask for one test, then put it back."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_to(value: int) -> None:
        os.umask(value)

    yield set_to
    os.umask(previous)


# -- reading -------------------------------------------------------------------------------------


def test_read_refuses_a_linked_file(root, outside):
    (root / "a").mkdir()
    (root / "a" / "wgsky0.conf").symlink_to(outside / "secret")
    with pytest.raises(UnsafePathError) as raised:
        atomic.read_bytes(root / "a" / "wgsky0.conf", root)
    assert raised.value.path == root / "a" / "wgsky0.conf"
    assert "outside secret" not in str(raised.value)


def test_read_refuses_a_linked_folder_on_the_way(root, outside):
    (root / "out").mkdir()
    (root / "out" / "a").symlink_to(outside)
    with pytest.raises(UnsafePathError) as raised:
        atomic.read_bytes(root / "out" / "a" / "wgsky0.conf", root)
    assert raised.value.path == root / "out" / "a"


def test_read_of_a_missing_file_or_folder_is_none(root):
    assert atomic.read_bytes(root / "nothing" / "here.conf", root) is None
    (root / "folder").mkdir()
    assert atomic.read_bytes(root / "folder" / "here.conf", root) is None


def test_a_fifo_in_place_of_a_file_does_not_hang(root):
    os.mkfifo(root / "state.json")
    done: list[BaseException] = []

    def read() -> None:
        try:
            atomic.read_bytes(root / "state.json", root)
        except BaseException as exc:  # noqa: BLE001 - the test looks at what was raised
            done.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():
        with open(root / "state.json", "w"):  # unblock the reader before failing
            pass
        pytest.fail("reading a FIFO blocked")
    assert isinstance(done[0], OSError) and "Not a regular file" in str(done[0])


def test_a_key_file_larger_than_the_limit_is_not_read_whole(root):
    (root / "big").write_bytes(b"x" * 10_000)
    with pytest.raises(OSError, match="Larger than 4096 bytes"):
        atomic.read_bytes(root / "big", root, limit=4096)


# -- writing -------------------------------------------------------------------------------------


def test_write_refuses_a_linked_folder_and_writes_nothing_outside(root, outside):
    before = tree(outside)
    (root / "out").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        atomic.write_atomic(root / "out" / "wgsky0.conf", b"private key", 0o600, root)
    with pytest.raises(UnsafePathError):
        atomic.ensure_dir(root / "out" / "a", 0o700, root)
    assert tree(outside) == before


def test_write_refuses_a_linked_file_and_leaves_link_and_target(root, outside):
    before = tree(outside)
    (root / "state.json").symlink_to(outside / "secret")
    with pytest.raises(UnsafePathError):
        atomic.write_atomic(root / "state.json", b"{}", 0o600, root)
    assert (root / "state.json").is_symlink()
    assert tree(outside) == before
    assert [p.name for p in root.iterdir()] == ["state.json"], "no temporary file left behind"


def test_ensure_dir_never_chmods_through_a_link(root, outside):
    (root / ".skyplan").symlink_to(outside)
    with pytest.raises(UnsafePathError) as raised:
        atomic.ensure_dir(root / ".skyplan", 0o700, root)
    assert raised.value.path == root / ".skyplan"
    assert mode(outside) == 0o755


def test_write_many_fails_only_the_files_behind_a_link(root, outside):
    before = tree(outside)
    (root / "a").symlink_to(outside)
    (root / "b").mkdir()
    failures = atomic.write_many([(root / "a" / "wgsky0.conf", b"A", 0o600), (root / "b" / "wgsky0.conf", b"B", 0o600)], within=root)
    assert list(failures) == [root / "a" / "wgsky0.conf"]
    assert isinstance(failures[root / "a" / "wgsky0.conf"], UnsafePathError)
    assert (root / "b" / "wgsky0.conf").read_bytes() == b"B"
    assert tree(outside) == before


def test_open_file_refuses_a_linked_lock_file(root, outside):
    (root / "state.json.lock").symlink_to(outside / "secret")
    with pytest.raises(UnsafePathError):
        atomic.open_file(root / "state.json.lock", os.O_RDWR | os.O_CREAT, 0o600, root)
    assert (outside / "secret").read_text() == "outside secret\n"


def test_without_within_the_named_folder_is_trusted_as_it_stands(tmp_path, outside):
    # A path the user named (plan --out, fmt of links.yaml): its folder may be a link.
    (tmp_path / "plans").symlink_to(outside)
    atomic.write_atomic(tmp_path / "plans" / "saved.plan", b"plan", 0o600)
    assert (outside / "saved.plan").read_bytes() == b"plan"


# -- deleting ------------------------------------------------------------------------------------


def test_remove_refuses_a_link_and_deletes_nothing(root, outside):
    before = tree(outside)
    (root / "a").symlink_to(outside)
    (root / "b").mkdir()
    (root / "b" / "wgsky0.conf").symlink_to(outside / "wgsky0.conf")
    with pytest.raises(UnsafePathError):
        atomic.remove(root / "a" / "wgsky0.conf", root)
    with pytest.raises(UnsafePathError):
        atomic.remove(root / "b" / "wgsky0.conf", root)
    with pytest.raises(UnsafePathError):
        atomic.remove_empty_dir(root / "a", root)
    atomic.remove_leftovers(root / "b", within=root)  # no temporary there: nothing happens
    with pytest.raises(UnsafePathError):
        atomic.remove_leftovers(root / "a", within=root)
    assert (root / "b" / "wgsky0.conf").is_symlink() and (root / "a").is_symlink()
    assert tree(outside) == before


def test_leftovers_behind_a_link_are_not_touched(root, outside):
    (outside / ".state.json.1234.tmp").write_text("not ours")
    before = tree(outside)
    (root / ".skyplan").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        atomic.remove_leftovers(root / ".skyplan", "state.json", root)
    assert tree(outside) == before


def test_remove_of_a_regular_file_works_and_says_so(root):
    (root / "a").mkdir()
    (root / "a" / "x.key").write_text("k")
    assert atomic.remove(root / "a" / "x.key", root) is True
    assert atomic.remove(root / "a" / "x.key", root) is False
    assert atomic.remove_empty_dir(root / "a", root) is True
    assert not (root / "a").exists()


# -- folder modes --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0o000, 0o002, 0o277])
def test_folders_are_made_with_exactly_their_mode_whatever_the_umask(root, umask, value):
    umask(value)
    atomic.ensure_dir(root / ".skyplan" / "keys", 0o700, root)
    atomic.ensure_dir(root / "wireguard" / "a", 0o700, root)
    atomic.ensure_dir(root / "public" / "b", 0o755, root)
    umask(0o022)
    for made in (".skyplan", ".skyplan/keys", "wireguard", "wireguard/a"):
        assert mode(root / made) == 0o700, made
    assert mode(root / "public") == mode(root / "public/b") == 0o755


def test_an_existing_wider_folder_is_tightened(root):
    (root / "keys").mkdir()
    (root / "keys").chmod(0o777)
    atomic.ensure_dir(root / "keys", 0o700, root)
    assert mode(root / "keys") == 0o700


def test_a_missing_anchor_is_made_from_the_nearest_folder(tmp_path, umask):
    umask(0o000)
    atomic.ensure_dir(tmp_path / "srv" / "wg" / "a", 0o700, tmp_path / "srv" / "wg")
    umask(0o022)
    assert mode(tmp_path / "srv") == mode(tmp_path / "srv" / "wg") == mode(tmp_path / "srv" / "wg" / "a") == 0o700


def test_a_path_that_climbs_out_of_its_anchor_is_refused(root, outside):
    before = tree(outside)
    with pytest.raises(UnsafePathError, match="is outside"):
        atomic.write_atomic(root / ".skyplan" / "keys" / ".." / ".." / ".." / outside.name / "secret", b"x", 0o600, root)
    with pytest.raises(UnsafePathError, match="is outside"):
        atomic.remove(root / "wireguard" / ".." / ".." / outside.name / "secret", root)
    assert tree(outside) == before


# Staged by a pool of threads, or by the caller as each file is added (the apply's own batches).
BATCH_WORKERS = pytest.mark.parametrize("workers", [4, 0], ids=["pool", "inline"])


@BATCH_WORKERS
def test_a_batch_puts_nothing_in_place_before_commit_and_leaves_nothing_when_abandoned(root, workers):
    (root / "a").mkdir()
    (root / "a" / "wgsky0.conf").write_bytes(b"old")
    with atomic.Batch(root, workers) as batch:
        batch.add(root / "a" / "wgsky0.conf", b"new", 0o600)
        batch.add(root / "b" / "wgsky0.conf", b"B", 0o600, folder_mode=0o700)
        # Staged (in the background, or at once): the old file stands until commit.
        batch._hand_over()
        batch._jobs[-1][1].result()
        assert (root / "a" / "wgsky0.conf").read_bytes() == b"old"
        assert not (root / "b" / "wgsky0.conf").exists()
    # Never committed (the run was cut short): the temporaries are gone, the old file stands.
    assert sorted(p.name for p in (root / "a").iterdir()) == ["wgsky0.conf"]
    assert list((root / "b").iterdir()) == []
    assert (root / "a" / "wgsky0.conf").read_bytes() == b"old"


@BATCH_WORKERS
@pytest.mark.parametrize("files", [5, 12], ids=["one-chunk", "two-chunks"])
def test_a_batch_interrupted_while_staging_leaves_no_temporary(root, monkeypatch, workers, files):
    # A Ctrl-C while the applying thread stages a chunk (every skyctl command's two configs are
    # one chunk, staged within commit): what that chunk staged holds private keys.
    real, calls = atomic._stage, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(atomic, "_stage", interrupted)
    (root / "a").mkdir()
    with pytest.raises(KeyboardInterrupt):
        with atomic.Batch(root, workers) as batch:
            for i in range(files):
                batch.add(root / "a" / f"c{i}.conf", b"PrivateKey = secret\n", 0o600)
            batch.commit()
    assert sorted(p.name for p in (root / "a").iterdir()) == []


@BATCH_WORKERS
def test_a_batch_makes_tightens_and_cleans_the_folders_it_is_asked_to(root, outside, workers):
    (root / "wide").mkdir(mode=0o755)
    os.chmod(root / "wide", 0o755)
    (root / "wide" / ".wgsky0.conf.0badc0de.tmp").write_bytes(b"left by a killed writer")
    (root / "linked").symlink_to(outside)
    before = tree(outside)
    with atomic.Batch(root, workers) as batch:
        for name in ("new", "wide", "linked"):
            batch.add(root / name / "wgsky0.conf", name.encode(), 0o600, folder_mode=0o700)
        failures = batch.commit()
    assert list(failures) == [root / "linked" / "wgsky0.conf"] and isinstance(failures[root / "linked" / "wgsky0.conf"], UnsafePathError)
    assert mode(root / "new") == mode(root / "wide") == 0o700
    assert sorted(p.name for p in (root / "wide").iterdir()) == ["wgsky0.conf"]
    assert (root / "new" / "wgsky0.conf").read_bytes() == b"new" and mode(root / "new" / "wgsky0.conf") == 0o600
    assert tree(outside) == before


@BATCH_WORKERS
@pytest.mark.parametrize("syncfs", [True, False])
def test_a_large_batch_is_made_durable_once_or_file_by_file(root, monkeypatch, syncfs, workers):
    calls = {"syncfs": 0, "fsync": 0}
    real_fsync = os.fsync

    def fake_syncfs(fd):
        calls["syncfs"] += 1
        return 0

    def counting_fsync(fd):
        calls["fsync"] += 1
        return real_fsync(fd)

    atomic._syncfs_call.cache_clear()
    monkeypatch.setattr(atomic, "_syncfs_call", lambda: fake_syncfs if syncfs else None)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    files = [(root / f"c{i}" / "wgsky0.conf", f"{i}".encode(), 0o600) for i in range(atomic.SYNCFS_FROM)]
    with atomic.Batch(root, workers) as batch:
        for path, data, mode_ in files:
            batch.add(path, data, mode_, folder_mode=0o700)
        assert batch.commit() == {}
    assert all(path.read_bytes() == data for path, data, _ in files)
    # Data before the renames, then the renames: twice for the whole file system, or each file
    # and each folder on its own.
    assert calls == ({"syncfs": 2, "fsync": 0} if syncfs else {"syncfs": 0, "fsync": 2 * len(files)})


def test_kept_folders_read_as_a_fresh_walk_does_and_still_refuse_links(root, outside):
    (root / "keys").mkdir()
    for i in range(3):
        (root / "keys" / f"c{i}.key").write_bytes(f"key {i}".encode())
        (root / "w" / f"c{i}").mkdir(parents=True)
        (root / "w" / f"c{i}" / "wgsky0.conf").write_bytes(f"conf {i}".encode())
    (root / "w" / "evil").symlink_to(outside)
    opened = len(os.listdir("/proc/self/fd"))
    with atomic.kept_folders():
        for i in range(3):
            assert atomic.read_bytes(root / "keys" / f"c{i}.key", root) == f"key {i}".encode()
            assert atomic.read_bytes(root / "w" / f"c{i}" / "wgsky0.conf", root) == f"conf {i}".encode()
        assert atomic.read_bytes(root / "w" / "gone" / "wgsky0.conf", root) is None
        with pytest.raises(UnsafePathError):
            atomic.read_bytes(root / "w" / "evil" / "secret", root)
        # Reached once, kept for the next read: no walk from the anchor again.
        assert len(os.listdir("/proc/self/fd")) > opened
    assert len(os.listdir("/proc/self/fd")) == opened  # every kept folder closed after


def test_kept_folders_keep_at_most_their_limit_open(root, monkeypatch):
    monkeypatch.setattr(atomic._KeptFolders, "LIMIT", 4)
    for i in range(10):
        (root / f"c{i}").mkdir()
        (root / f"c{i}" / "f").write_bytes(b"%d" % i)
    opened = len(os.listdir("/proc/self/fd"))
    with atomic.kept_folders():
        assert [atomic.read_bytes(root / f"c{i}" / "f", root) for i in range(10)] == [b"%d" % i for i in range(10)]
        assert len(os.listdir("/proc/self/fd")) <= opened + 4
    assert len(os.listdir("/proc/self/fd")) == opened


def test_a_batch_across_file_systems_syncs_each_of_them(root, monkeypatch):
    synced = []
    atomic._syncfs_call.cache_clear()
    monkeypatch.setattr(atomic, "_syncfs_call", lambda: lambda fd: synced.append(devices[fd]) or 0)
    real_devices = atomic._devices
    devices: dict[int, int] = {}

    def two_file_systems(folders):
        found = real_devices(folders)
        # Every other folder on a second file system, as an output_dir that is a mount would be.
        devices.update({fd: i % 2 for i, fd in enumerate(sorted(found))})
        return dict(devices)

    monkeypatch.setattr(atomic, "_devices", two_file_systems)
    with atomic.Batch(root) as batch:
        for i in range(atomic.SYNCFS_FROM):
            batch.add(root / f"c{i}" / "wgsky0.conf", b"x", 0o600, folder_mode=0o700)
        assert batch.commit() == {}
    assert sorted(synced) == [0, 0, 1, 1]  # each file system before the renames and after


def test_syncfs_is_not_trusted_on_kernels_that_do_not_report_its_errors(monkeypatch):
    atomic._syncfs_call.cache_clear()
    monkeypatch.setattr(atomic, "_kernel_version", lambda: (5, 4))
    try:
        assert atomic._syncfs_call() is None
    finally:
        atomic._syncfs_call.cache_clear()


@BATCH_WORKERS
def test_a_batch_staged_before_another_batch_was_made_durable_shares_that_sync(root, monkeypatch, workers):
    # Keys, then the configs that hold them: the sync after the keys' renames also covers the
    # configs' data, when every config was staged before it, the last chunk (fewer than
    # Batch.CHUNK files, staged only when asked) included.
    events: list[tuple[str, set[str]]] = []
    real_syncfs = atomic._syncfs_call()
    configs = [root / "w" / f"c{i}" / "wgsky0.conf" for i in range(atomic.SYNCFS_FROM + 3)]

    def temporaries() -> set[str]:
        return {p.parent.name for p in (root / "w").glob("*/.wgsky0.conf.*.tmp")}

    def syncfs(fd):
        events.append(("sync", temporaries()))
        return real_syncfs(fd) if real_syncfs else 0

    atomic._syncfs_call.cache_clear()
    monkeypatch.setattr(atomic, "_syncfs_call", lambda: syncfs)
    with atomic.Batch(root, workers) as keys, atomic.Batch(root, workers) as files:
        for i in range(atomic.SYNCFS_FROM):
            keys.add(root / "keys" / f"c{i}.key", b"key", 0o600, folder_mode=0o700)
        for i, path in enumerate(configs):
            files.add(path, b"conf %d" % i, 0o600, folder_mode=0o700)
        files.finish_staging()
        assert keys.commit() == {}
        assert keys.synced  # the file system of both, synced after the keys' renames
        before = len(events)
        assert files.commit(keys.synced) == {}
    staged = {path.parent.name for path in configs}
    # The sync after the keys' renames saw every config staged; the configs' commit synced once,
    # after their renames, not before them as well.
    assert events[before - 1][1] == staged
    assert [names for _, names in events[before:]] == [set()]
    assert all(path.read_bytes() == b"conf %d" % i for i, path in enumerate(configs))
    assert files.synced == keys.synced


def test_a_sync_of_another_file_system_is_no_reason_to_skip_one(root, monkeypatch):
    synced = []
    atomic._syncfs_call.cache_clear()
    monkeypatch.setattr(atomic, "_syncfs_call", lambda: lambda fd: synced.append(fd) or 0)
    with atomic.Batch(root) as batch:
        for i in range(atomic.SYNCFS_FROM):
            batch.add(root / f"c{i}" / "wgsky0.conf", b"x", 0o600, folder_mode=0o700)
        device = os.stat(root).st_dev
        assert batch.commit(frozenset({device + 1})) == {}
    assert len(synced) == 2  # before the renames and after: the other file system's sync says nothing here
