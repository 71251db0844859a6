"""skyplan/workspace.py: the one builder of workspaces, and config loading that returns data only."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from tests.workspaces import BASIC

PG_BACKEND = "backend: {type: postgres, url: 'postgresql://skyplan@127.0.0.1:1/none'}\n"


def test_loaded_config_is_data_and_the_workspace_builds_the_provider(basic):
    from skyplan.config.loader import load_config
    from skyplan.sdk import Provider
    from skyplan.workspace import open_workspace

    loaded = load_config(basic / "links.yaml")
    for f in dataclasses.fields(loaded):
        value = getattr(loaded, f.name)
        assert not callable(value) or isinstance(value, type), f"{f.name} is something to call"
        assert not isinstance(value, Provider), f"{f.name} is a provider instance"
    assert loaded.provider_class.name == "wireguard"

    ws = open_workspace(basic / "links.yaml")
    try:
        assert isinstance(ws.provider, loaded.provider_class)
        assert ws.provider.settings == loaded.settings
        assert ws.provider.paths == ws.paths and ws.paths.root == basic.resolve()
    finally:
        ws.close()


def test_the_cache_is_written_only_by_the_explicit_step_after_success(basic):
    from skyplan.workspace import open_workspace

    cache = basic / ".skyplan/cache"
    ws = open_workspace(basic / "links.yaml")
    try:
        assert ws.loaded is not None and ws.loaded.cache_key is not None
        assert not cache.exists(), "loading alone wrote the cache"
        ws.remember_config()
        assert sorted(p.name for p in cache.iterdir()) == ["config.json", "settings.json"]
    finally:
        ws.close()
    again = open_workspace(basic / "links.yaml")
    try:
        assert again.loaded is not None and again.loaded.cache_key is None, "a cached configuration is stored again"
    finally:
        again.close()


def test_a_plan_that_fails_on_a_damaged_state_caches_nothing(basic, skyplan):
    (basic / ".skyplan").mkdir()
    (basic / ".skyplan/state.json").write_text("{not json")
    result = skyplan("plan")
    assert result.exit_code == 1
    assert not (basic / ".skyplan/cache").exists()


def test_open_state_reads_the_backend_of_a_broken_file(workspace):
    from skyplan.state.postgres import PostgresStateStore
    from skyplan.workspace import open_state

    (workspace / "links.yaml").write_text(PG_BACKEND + "version: 1\nclusterz: []\n")  # unknown key: invalid
    store = open_state(workspace / "links.yaml", "links.yaml")
    try:
        assert isinstance(store, PostgresStateStore)
    finally:
        store.close()


@pytest.mark.parametrize(
    "hostile",
    [
        # Deeper than the parser's limit (config/source.py MAX_DEPTH).
        "deep: " + "[" * 200 + "]" * 200 + "\n",
        # An alias bomb: far more nodes than MAX_EXPANDED_NODES once expanded.
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8)),
    ],
    ids=["too-deep", "alias-bomb"],
)
def test_open_state_holds_a_hostile_file_to_the_parsers_limits(workspace, hostile):
    """A file the configuration's parser refuses has no say where the state lives: the
    workspace's own folder is used, quickly, and the database it names is never reached."""
    from skyplan.state.local import FileStateStore
    from skyplan.workspace import open_state

    (workspace / "links.yaml").write_text(PG_BACKEND + hostile)
    started = time.monotonic()
    store = open_state(workspace / "links.yaml", "links.yaml")
    try:
        assert isinstance(store, FileStateStore)
        assert store.path == workspace.resolve() / ".skyplan/state.json"
    finally:
        store.close()
    assert time.monotonic() - started < 10


def test_state_list_of_a_hostile_file_answers_from_the_local_state(workspace, skyplan):
    skyplan_ok = (workspace / "links.yaml")
    skyplan_ok.write_text(BASIC)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    skyplan_ok.write_text(PG_BACKEND + "deep: " + "[" * 200 + "]" * 200 + "\n")
    listed = skyplan("state", "list")
    assert listed.exit_code == 0, listed.output
    assert "cluster.us-west" in listed.output and "127.0.0.1" not in listed.output


def test_configured_provider_name(basic, workspace):
    from skyplan.workspace import configured_provider_name

    assert configured_provider_name(basic / "links.yaml") == "wireguard"
    assert configured_provider_name(Path(workspace / "missing.yaml")) is None
