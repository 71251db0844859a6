"""The validated-configuration cache: used while the text is unchanged, never trusted beyond it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.workspaces import BASIC


def read_entry(path: Path) -> dict:
    """A cache file's document, as skyplan wrote it (behind the line that seals it)."""
    return json.loads(path.read_bytes().split(b"\n", 1)[1])


def write_entry(path: Path, document: dict, workspace: Path) -> None:
    """Write an entry as this user's skyplan would: sealed with this user's secret."""
    from skyplan import seal

    path.write_bytes(seal.seal(path.name, json.dumps(document).encode(), workspace))


def test_an_unchanged_file_is_not_parsed_again(basic, skyplan, monkeypatch):
    from skyplan.config import source

    assert skyplan("plan").exit_code == 0
    assert (basic / ".skyplan/cache/config.json").exists()
    parses = []
    monkeypatch.setattr(source, "parse_fast", lambda *a: parses.append(a) or None)
    monkeypatch.setattr(source, "parse", lambda *a: parses.append(a) or None)
    assert skyplan("plan").exit_code == 0
    assert parses == []


def test_a_changed_file_is_validated_again(basic, skyplan):
    skyplan("plan")
    (basic / "links.yaml").write_text(BASIC.replace("target: eu-central", "target: nowhere"))
    result = skyplan("plan")
    assert result.exit_code == 1
    assert "links.yaml:18:13: links[0].target: cluster 'nowhere' is not defined" in result.output


def test_a_damaged_or_foreign_cache_is_ignored(basic, skyplan):
    skyplan("plan")
    cache = basic / ".skyplan/cache/config.json"
    document = read_entry(cache)
    document["config"]["clusters"] = "not a list"
    write_entry(cache, document, basic)
    assert "Plan: 5 to add" in skyplan("plan").output
    cache.write_text("{garbage")
    assert "Plan: 5 to add" in skyplan("plan").output


def test_nothing_is_cached_when_the_command_fails(basic, skyplan):
    (basic / ".skyplan").mkdir()
    (basic / ".skyplan/state.json").write_text("{damaged")
    assert skyplan("plan").exit_code == 1
    assert not (basic / ".skyplan/cache").exists()


def test_validate_never_uses_the_cache(basic, skyplan):
    skyplan("plan")
    cache = basic / ".skyplan/cache/config.json"
    document = cache.read_bytes()
    (basic / "links.yaml").write_text(BASIC + "bogus: 1\n")
    assert skyplan("validate").exit_code == 1
    assert cache.read_bytes() == document


def test_a_cache_from_another_provider_version_is_ignored(basic, skyplan, monkeypatch):
    from skyplan.config import source

    skyplan("plan")
    cache = basic / ".skyplan/cache/config.json"
    document = read_entry(cache)
    assert document["provider"]["name"] == "wireguard" and document["provider"]["version"]
    document["provider"]["version"] = "0.0.0-other"
    write_entry(cache, document, basic)
    parses = []
    original = source.parse_fast
    monkeypatch.setattr(source, "parse_fast", lambda *a: parses.append(a) or original(*a))
    assert skyplan("plan").exit_code == 0
    assert len(parses) == 1


def test_a_built_in_providers_cache_is_used_whatever_an_editable_installs_metadata_says(basic, skyplan, monkeypatch):
    # An editable install's metadata keeps the version it was installed at; the code that runs
    # (and that the cache's key names) is the one to match.
    from importlib import metadata

    from skyplan import __version__
    from skyplan.config import source
    from skyplan.sdk import registry

    real = registry.installed_providers()["wireguard"]
    lagging = type("Dist", (), {"name": "skyplan", "version": "0.0.1"})()
    entry = type("EntryPoint", (), {"name": real.name, "value": real.value, "dist": lagging, "load": real.load})()
    monkeypatch.setattr(registry, "installed_providers", lambda: {"wireguard": entry})
    assert skyplan("plan").exit_code == 0
    assert read_entry(basic / ".skyplan/cache/config.json")["provider"]["version"] == __version__
    parses = []
    original = source.parse_fast
    monkeypatch.setattr(source, "parse_fast", lambda *a: parses.append(a) or original(*a))
    monkeypatch.setattr(metadata, "version", lambda name: "0.0.1")
    assert skyplan("plan").exit_code == 0
    assert parses == []


def test_a_killed_runs_half_written_cache_is_cleared(basic, skyplan):
    skyplan("plan")
    cache = basic / ".skyplan/cache"
    # What a run SIGKILLed between writing a temporary file and renaming it leaves behind.
    left = [cache / ".config.json.k1ll3d.tmp", cache / ".settings.json.k1ll3d.tmp"]
    for path in left:
        path.write_text('{"key": "half')
    (basic / "links.yaml").write_text(BASIC.replace("203.0.113.10", "203.0.113.11"))  # a store is due
    assert skyplan("plan").exit_code == 0
    assert [path for path in left if path.exists()] == []
    assert sorted(p.name for p in cache.iterdir()) == ["config.json", "settings.json"]


# -- a cache entry planted by a pull request ------------------------------------------------------


def _planted_entry(text: str, outside: Path, marker: Path) -> dict:
    """The entry an attacker computes from the public text alone: same key, hostile settings."""
    from skyplan.config.cache import key_of
    from skyplan.config.loader import load_config, text_digest
    from skyplan.sdk import provider_ref

    honest = load_config(Path("links.yaml"), display="links.yaml", text=text)
    settings = honest.settings.model_dump(mode="json")
    settings.update(output_dir=str(outside), on_change=["sh", "-c", f"touch {marker}"])
    config = honest.config.model_dump(mode="json")
    config["provider"] = {"name": "wireguard", **settings}
    return {
        "key": key_of(text_digest(text), "links.yaml"),
        "provider": provider_ref("wireguard"),
        "config": config,
        "settings": settings,
    }


def _plant(workspace: Path, document: dict, how: str) -> None:
    import hashlib
    import hmac
    import os

    folder = workspace / ".skyplan/cache"
    folder.mkdir(parents=True, exist_ok=True)
    head = {k: document["config"][k] for k in ("version", "backend", "provider")}
    for name, content in (("config.json", document), ("settings.json", {**document, "config": head})):
        body = json.dumps(content).encode()
        if how == "plain":
            blob = body  # the format of earlier versions
        else:
            # Shaped like a sealed entry, with a MAC under a key of the attacker's own.
            mac = hmac.new(os.urandom(32), name.encode() + b"\0" + body, hashlib.sha256).hexdigest()
            blob = b"skyplan-sealed-1 " + mac.encode() + b"\n" + body
        (folder / name).write_bytes(blob)





@pytest.mark.parametrize("how", ["plain", "sealed with another key"])
def test_a_planted_cache_entry_changes_nothing(basic, skyplan, skyctl, tmp_path_factory, how):
    outside = tmp_path_factory.mktemp("outside")
    marker = outside / "hook-ran"
    _plant(basic, _planted_entry(BASIC, outside, marker), how)

    assert skyplan("validate").output == "Success! The configuration is valid.\n"
    planned = skyplan("plan", "--json")
    assert planned.exit_code == 0
    after = {c["address"]: c["change"]["after"] for c in json.loads(planned.output)["resource_changes"]}
    assert after["cluster.us-west"]["output_dir"] == "wireguard"
    applied = skyplan("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert skyctl("get", "link").exit_code == 0
    assert skyctl("create", "link", "eu-ap", "-s", "eu-central", "-t", "ap-south").exit_code == 0

    assert not marker.exists(), "the planted on_change ran"
    assert list(outside.iterdir()) == [], "something was written where the planted output_dir points"
    assert sorted(p.relative_to(basic).as_posix() for p in basic.rglob("*.conf")) == [
        "wireguard/ap-south/wgsky0.conf", "wireguard/eu-central/wgsky0.conf", "wireguard/us-west/wgsky0.conf",
    ]
    # The honest run replaced the planted entry with one of its own.
    assert read_entry(basic / ".skyplan/cache/config.json")["settings"]["output_dir"] == "wireguard"


def test_the_secret_lives_outside_the_workspace_and_is_private(basic, skyplan):
    import os

    from skyplan import seal

    skyplan("plan")
    secret = seal.secret_path()
    assert secret is not None and basic not in secret.parents
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.parent.stat().st_mode & 0o777 == 0o700
    assert secret.read_bytes() not in (basic / ".skyplan/cache/config.json").read_bytes()
    assert os.environ["XDG_CACHE_HOME"] in str(secret)


def test_a_secret_inside_the_workspace_is_never_used(basic, skyplan, monkeypatch):
    # Planting the secret with the files would let a pull request seal its own entries.
    monkeypatch.setenv("XDG_CACHE_HOME", str(basic / "user-cache"))
    assert skyplan("plan").exit_code == 0
    assert not (basic / ".skyplan/cache").exists()
    assert not (basic / "user-cache/skyplan/secret").exists()
