"""The per-user seal: only blobs made with this user's secret, for the same purpose, are believed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skyplan import seal


@pytest.fixture
def home(tmp_path_factory, monkeypatch) -> Path:
    """A fresh user cache folder, with the secret of an earlier test forgotten."""
    folder = tmp_path_factory.mktemp("user-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    seal._load_or_create.cache_clear()
    yield folder
    seal._load_or_create.cache_clear()


def test_a_sealed_blob_opens_only_unchanged_and_for_its_purpose(home, tmp_path):
    blob = seal.seal("config.json", b'{"a": 1}', tmp_path)
    assert blob is not None and b"secret" not in blob
    assert seal.unseal("config.json", blob, tmp_path) == b'{"a": 1}'
    assert seal.unseal("settings.json", blob, tmp_path) is None
    assert seal.unseal("config.json", blob.replace(b'"a": 1', b'"a": 2'), tmp_path) is None
    assert seal.unseal("config.json", b'{"a": 1}', tmp_path) is None
    assert seal.unseal("config.json", blob[:20], tmp_path) is None


def test_the_secret_is_created_private_once(home, tmp_path):
    seal.seal("x", b"", tmp_path)
    secret = home / "skyplan/secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == seal.SECRET_BYTES
    assert (home / "skyplan").stat().st_mode & 0o777 == 0o700
    first = secret.read_bytes()
    seal._load_or_create.cache_clear()
    seal.seal("x", b"", tmp_path)
    assert secret.read_bytes() == first
    assert sorted(p.name for p in (home / "skyplan").iterdir()) == ["secret"]


def test_a_secret_others_can_read_or_replace_is_not_used(home, tmp_path):
    blob = seal.seal("x", b"body", tmp_path)
    secret = home / "skyplan/secret"
    os.chmod(secret, 0o644)
    seal._load_or_create.cache_clear()
    assert seal.unseal("x", blob, tmp_path) is None and seal.seal("x", b"body", tmp_path) is None


def test_a_secret_behind_a_symlink_is_not_used(home, tmp_path):
    elsewhere = tmp_path / "planted"
    elsewhere.write_bytes(b"k" * seal.SECRET_BYTES)
    os.chmod(elsewhere, 0o600)
    (home / "skyplan").mkdir(mode=0o700)
    (home / "skyplan/secret").symlink_to(elsewhere)
    assert seal.seal("x", b"body", tmp_path / "ws") is None


def test_without_a_usable_home_nothing_is_sealed(monkeypatch, tmp_path):
    not_a_folder = tmp_path / "home-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(not_a_folder))
    seal._load_or_create.cache_clear()
    try:
        assert seal.seal("x", b"body", tmp_path) is None
    finally:
        seal._load_or_create.cache_clear()


def test_a_secret_elsewhere_in_the_workspace_s_checkout_is_not_used(monkeypatch, tmp_path):
    # A monorepo whose CI sets XDG_CACHE_HOME inside the checkout: a pull request could add the
    # secret there (checked out 0600 under umask 077) and seal whatever it likes with it.
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "infra").mkdir()
    (repo / ".cache/skyplan").mkdir(parents=True, mode=0o700)
    os.chmod(repo / ".cache/skyplan", 0o700)
    planted = repo / ".cache/skyplan/secret"
    planted.write_bytes(b"p" * seal.SECRET_BYTES)
    os.chmod(planted, 0o600)
    monkeypatch.setenv("XDG_CACHE_HOME", str(repo / ".cache"))
    seal._load_or_create.cache_clear()
    try:
        assert seal.seal("x", b"body", repo / "infra") is None
        assert seal.unseal("x", b"anything", repo / "infra") is None
    finally:
        seal._load_or_create.cache_clear()


def test_a_secret_in_a_folder_others_can_write_to_is_not_used(home, tmp_path):
    blob = seal.seal("x", b"body", tmp_path)
    os.chmod(home / "skyplan", 0o777)  # anyone could swap the secret for their own
    seal._load_or_create.cache_clear()
    assert seal.unseal("x", blob, tmp_path) is None


def test_nothing_is_made_in_a_home_that_is_not_this_users(monkeypatch, tmp_path):
    other = tmp_path / "alice"
    other.mkdir()
    os.chown(other, 4242, 4242)  # root running with another user's HOME (sudo -E)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(other))
    seal._load_or_create.cache_clear()
    try:
        assert seal.seal("x", b"body", tmp_path / "ws") is None
        assert list(other.iterdir()) == []
    finally:
        seal._load_or_create.cache_clear()
