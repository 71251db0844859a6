"""The validated-configuration cache: used while the text is unchanged, never trusted beyond it."""

from __future__ import annotations

import json

from tests.workspaces import BASIC


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
    document = json.loads(cache.read_text())
    document["config"]["clusters"] = "not a list"
    cache.write_text(json.dumps(document))
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
    document = json.loads(cache.read_text())
    (basic / "links.yaml").write_text(BASIC + "bogus: 1\n")
    assert skyplan("validate").exit_code == 1
    assert json.loads(cache.read_text()) == document


def test_a_cache_from_another_provider_version_is_ignored(basic, skyplan, monkeypatch):
    from skyplan.config import source

    skyplan("plan")
    cache = basic / ".skyplan/cache/config.json"
    document = json.loads(cache.read_text())
    assert document["provider"]["name"] == "wireguard" and document["provider"]["version"]
    document["provider"]["version"] = "0.0.0-other"
    cache.write_text(json.dumps(document))
    parses = []
    original = source.parse_fast
    monkeypatch.setattr(source, "parse_fast", lambda *a: parses.append(a) or original(*a))
    assert skyplan("plan").exit_code == 0
    assert len(parses) == 1


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
