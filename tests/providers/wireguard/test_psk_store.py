"""The preshared-key store: one private file per peering, never followed through a symlink."""

from __future__ import annotations

import base64
import os

import pytest

from skyplan.sdk import UnsafePathError
from skyplan_wireguard import psk

AB = psk.pair("b", "a")


def test_a_key_is_32_random_bytes_in_canonical_base64() -> None:
    found = {psk.generate() for _ in range(50)}
    assert len(found) == 50
    assert all(psk.is_key(key) and len(base64.b64decode(key)) == 32 for key in found)
    assert not psk.is_key("A" * 42 + "B=")  # unused bits set: wg refuses it


def test_keys_are_written_private_and_named_after_the_peering(tmp_path) -> None:
    os.umask(0o022)
    folder = tmp_path / ".skyplan/keys"
    key = psk.generate()
    assert psk.write(folder, tmp_path, {AB: key}) == {}
    file = folder / "a+b.psk"
    assert file.read_text() == key + "\n"
    assert file.stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.parent.stat().st_mode & 0o777 == 0o700
    assert psk.read(file, tmp_path) == key
    assert psk.read(folder / "a+c.psk", tmp_path) is None


def test_a_key_file_others_can_read_or_that_holds_no_key_is_refused(tmp_path) -> None:
    folder = tmp_path / "keys"
    key = psk.generate()
    psk.write(folder, tmp_path, {AB: key})
    file = psk.path(folder, AB)
    file.chmod(0o644)  # as git checks a file out
    with pytest.raises(psk.PresharedKeyError, match="readable by others"):
        psk.read(file, tmp_path)
    file.chmod(0o600)
    file.write_bytes(b"\xff" + key.encode())
    with pytest.raises(psk.PresharedKeyError) as refused:
        psk.read(file, tmp_path)
    assert key not in str(refused.value)


def test_a_symlink_in_place_of_a_key_file_is_never_followed(tmp_path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text(psk.generate() + "\n")
    target.chmod(0o600)
    psk.path(folder, AB).symlink_to(target)
    with pytest.raises(UnsafePathError):
        psk.read(psk.path(folder, AB), tmp_path)
    assert isinstance(psk.remove(folder, tmp_path, [AB])[AB], UnsafePathError)
    assert target.exists() and psk.path(folder, AB).is_symlink()


def test_a_key_follows_its_clusters_renames_and_a_retry_finds_it_moved(tmp_path) -> None:
    folder = tmp_path / "keys"
    key = psk.generate()
    psk.write(folder, tmp_path, {AB: key})
    psk.rename(folder, tmp_path, AB, psk.pair("a", "c"))
    psk.rename(folder, tmp_path, AB, psk.pair("a", "c"))  # done again after an interruption
    assert sorted(p.name for p in folder.iterdir()) == ["a+c.psk"]
    assert psk.read(folder / "a+c.psk", tmp_path) == key
    psk.write(folder, tmp_path, {AB: psk.generate()})
    with pytest.raises(psk.PresharedKeyError, match="holds another key"):
        psk.rename(folder, tmp_path, AB, psk.pair("a", "c"))
    assert psk.read(folder / "a+c.psk", tmp_path) == key
