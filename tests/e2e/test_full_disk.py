"""A full disk, for real (a tiny tmpfs): every run ends with one clear line, and the next converges."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workspaces import BASIC

pytestmark = pytest.mark.e2e

PAGE = 4096


class TinyDisk:
    """A 1 MiB tmpfs that can be filled to leave a given number of free pages."""

    def __init__(self, root: Path):
        self.root = root
        self.filler = root / ".filler"

    def fill(self, free_pages: int = 0) -> None:
        self.free()
        stats = os.statvfs(self.root)
        room = stats.f_bavail * stats.f_frsize
        with self.filler.open("wb") as handle:
            handle.write(b"\0" * max(0, room - free_pages * PAGE))

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def tiny_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TinyDisk]:
    """Fails, never skips: CI runs the end-to-end tests as root."""
    root = tmp_path / "disk"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=755", "tmpfs", str(root)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (run the end-to-end tests as root): {mounted.stderr.strip()}", pytrace=False)
    monkeypatch.chdir(root)
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    monkeypatch.delenv("SKYPLAN_CONFIG", raising=False)
    try:
        yield TinyDisk(root)
    finally:
        monkeypatch.undo()  # leave the mount before unmounting it
        subprocess.run(["umount", str(root)], check=True)


def assert_clean_failure(result, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.stderr.count("\n") == 1 or result.stderr.startswith("Error: "), result.stderr
    for text in expected:
        assert text in result.output, result.output


def test_no_room_for_the_lock_info_is_one_line_and_leaves_no_lock(tiny_disk, skyplan, skyctl):
    (tiny_disk.root / "links.yaml").write_text(BASIC)
    (tiny_disk.root / ".skyplan").mkdir(mode=0o700)
    tiny_disk.fill(free_pages=0)
    for result in (skyplan("plan"), skyplan("apply", "--auto-approve"), skyctl("create", "cluster", "extra", "--endpoint", "192.0.2.9:51820")):
        assert_clean_failure(result, "writing the lock info to", "No space left on device", "no lock is held")
        assert result.stderr.count("\n") == 1
    assert (tiny_disk.root / ".skyplan/state.json.lock").read_bytes() == b""
    assert sorted(p.name for p in (tiny_disk.root / ".skyplan").iterdir()) == ["state.json.lock"]
    tiny_disk.free()
    assert skyplan("apply", "--auto-approve").exit_code == 0


@pytest.mark.parametrize("update", [False, True], ids=["first-apply", "update"])
def test_whatever_write_fills_the_disk_the_run_fails_cleanly_and_the_next_converges(tiny_disk, skyplan, update):
    config = tiny_disk.root / "links.yaml"
    changed = BASIC.replace("203.0.113.10", "203.0.113.11") + "  - {name: eu-ap, source: eu-central, target: ap-south}\n"
    # One more free page each round, so that the disk fills up at a later write each time.
    for free_pages in range(0, 16):
        for leftover in (".skyplan", "wireguard"):
            subprocess.run(["rm", "-rf", str(tiny_disk.root / leftover)], check=True)
        config.write_text(BASIC)
        if update:
            assert skyplan("apply", "--auto-approve").exit_code == 0
            config.write_text(changed)
        tiny_disk.fill(free_pages)
        result = skyplan("apply", "--auto-approve")
        tiny_disk.free()
        if result.exit_code == 0:
            break
        assert_clean_failure(result, "No space left on device")
        again = skyplan("apply", "--auto-approve")
        assert again.exit_code == 0, again.output
        assert skyplan("plan", "--detailed-exitcode").exit_code == 0
    else:
        pytest.fail("apply never succeeded with 15 free pages")
    assert free_pages > 3, "the disk filled up at several different writes"
