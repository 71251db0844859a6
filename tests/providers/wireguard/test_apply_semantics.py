"""What an apply touches: which files are rewritten, which hooks run, which keys may change."""

from __future__ import annotations

import json

from tests.workspaces import links_yaml

THREE = [("a", "192.0.2.1:51820", ["10.1.0.0/16"]), ("b", "192.0.2.2:51820", ["10.2.0.0/16"]), ("c", "192.0.2.3:51820", ["10.3.0.0/16"])]
STAR = [("a-b", "a", "b"), ("a-c", "a", "c")]


def hooked(workspace, command: str = "echo $0 >> {log}") -> str:
    log = workspace / "hook.log"
    return f"on_change: [sh, -c, '{command.format(log=log)}', '{{{{ cluster }}}}']"


def state(workspace) -> dict:
    return {r["name"]: r for r in json.loads((workspace / ".skyplan/state.json").read_text())["resources"]}


def test_peers_whose_file_does_not_change_are_neither_rewritten_nor_reloaded(workspace, skyplan):
    (workspace / "links.yaml").write_text(links_yaml(THREE, STAR, provider=hooked(workspace)))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    (workspace / "hook.log").write_text("")
    before = {n: (workspace / f"wireguard/{n}/wgsky0.conf").stat().st_ino for n in "abc"}
    # b's listen port is in b's file only: its peer a's file stays as it is.
    text = links_yaml(THREE, STAR, provider=hooked(workspace)).replace("  - name: b\n", "  - name: b\n    listen_port: 51999\n", 1)
    (workspace / "links.yaml").write_text(text)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert (workspace / "hook.log").read_text().split() == ["b"]
    after = {n: (workspace / f"wireguard/{n}/wgsky0.conf").stat().st_ino for n in "abc"}
    assert after["a"] == before["a"] and after["c"] == before["c"] and after["b"] != before["b"]
    # An endpoint, though, is in every peer's file: those are rewritten and reloaded.
    (workspace / "hook.log").write_text("")
    (workspace / "links.yaml").write_text(text.replace("192.0.2.1:51820", "192.0.2.9:51820"))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert sorted((workspace / "hook.log").read_text().split()) == ["a", "b", "c"]


def test_a_failing_hook_on_a_peer_fails_the_change_that_needed_it(workspace, skyplan):
    fails_on_b = hooked(workspace, command='[ "$0" != b ] || {{ echo b refused >&2; exit 1; }}')
    (workspace / "links.yaml").write_text(links_yaml(THREE, STAR))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    moved = links_yaml([("a", "192.0.2.9:51820", ["10.1.0.0/16"]), *THREE[1:]], STAR, provider=fails_on_b)
    (workspace / "links.yaml").write_text(moved)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "cluster.a: Failed: on_change for cluster 'b' failed" in result.output and "b refused" in result.output
    assert state(workspace)["a"]["status"]["phase"] == "FAILED"
    retry = skyplan("plan", "--compact")
    assert "~ cluster.a  (the last apply failed: on_change for cluster 'b' failed" in retry.output


def test_an_update_never_regenerates_a_missing_key(basic, skyplan):
    skyplan("apply", "--auto-approve")
    public = state(basic)["us-west"]["computed"]["public_key"]
    (basic / "links.yaml").write_text((basic / "links.yaml").read_text().replace("203.0.113.10", "203.0.113.11"))
    skyplan("plan", "--out", "p.plan")
    (basic / ".skyplan/keys/us-west.key").unlink()  # lost between the plan and its apply
    # Planned again, the update is a replace now: the saved plan is refused before anything runs.
    result = skyplan("apply", "p.plan")
    assert result.exit_code == 1
    assert "Saved plan p.plan was altered or no longer matches links.yaml and the state: the change for cluster.us-west" in result.output
    # Lost while an update is being applied, the provider refuses to make a key on its own.
    from skyplan.apply import apply_plan
    from skyplan.planning import make_plan
    from skyplan.workspace import open_workspace

    ws = open_workspace(basic / "links.yaml")
    prior = ws.read_state()
    plan = make_plan(ws, prior, desired=ws.desired(), do_refresh=False)
    outcome = apply_plan(plan, prior, ws.store, ws.provider)
    ws.store.close()
    errors = [r.error or "" for r in outcome.failed]
    assert any("key file .skyplan/keys/us-west.key is missing; run plan, which replaces the key" in e for e in errors), errors
    assert not (basic / ".skyplan/keys/us-west.key").exists()
    assert state(basic)["us-west"]["computed"]["public_key"] == public
    replace = skyplan("plan", "--compact")
    assert "-/+ cluster.us-west" in replace.output


def test_probe_output_never_carries_a_key_into_status(workspace, skyctl):
    (workspace / "links.yaml").write_text(
        "version: 1\nprovider:\n  name: wireguard\n"
        "  status_command: [sh, -c, 'cat {{ cluster }}.dump; cat {{ cluster }}.dump >&2; exit 255', '{{ cluster }}']\n"
    )
    skyctl("create", "cluster", "a", "--endpoint", "192.0.2.1:51820")
    skyctl("create", "cluster", "b", "--endpoint", "192.0.2.2:51820")
    skyctl("create", "link", "ab", "-s", "a", "-t", "b")
    private = (workspace / ".skyplan/keys/a.key").read_text().strip()
    (workspace / "a.dump").write_text(f"{private}\tPUB\t51820\toff\n")
    (workspace / "b.dump").write_text("")
    output = skyctl("get", "link", "ab", "-o", "json").output
    assert "exited with 255" in output
    assert private not in output
    assert private not in (workspace / ".skyplan/state.json").read_text()


def test_drift_never_shows_a_key_from_a_stray_line(basic, skyplan):
    skyplan("apply", "--auto-approve")
    private = (basic / ".skyplan/keys/us-west.key").read_text().strip()
    config = basic / "wireguard/us-west/wgsky0.conf"
    config.write_text(f"{private}\n" + config.read_text() + f"PostUp = echo {private}\n")
    output = skyplan("plan").output
    assert "Changed outside skyplan" in output
    assert private not in output and private.lower() not in output


def test_a_key_that_cannot_be_put_in_place_fails_its_cluster_and_no_file_holds_it(workspace, skyplan, monkeypatch):
    import errno
    import os

    four = [*THREE, ("d", "192.0.2.4:51820", ["10.4.0.0/16"])]
    (workspace / "links.yaml").write_text(links_yaml(four, [("a-b", "a", "b"), ("c-d", "c", "d")]))
    real = os.replace

    def failing_for_b(source, target, *args, **kwargs):
        if os.fspath(target) == "b.key":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_for_b)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert "cluster.b: Failed: " in result.output and "key for cluster 'b': Input/output error" in result.output
    assert "cluster.a: Failed: peer cluster 'b' has no key yet" in result.output
    assert not (workspace / ".skyplan/keys/b.key").exists()
    # Neither b's file nor its peer's was put in place; the other peering's were.
    assert not (workspace / "wireguard/b/wgsky0.conf").exists() and not (workspace / "wireguard/a/wgsky0.conf").exists()
    assert (workspace / "wireguard/c/wgsky0.conf").exists() and (workspace / "wireguard/d/wgsky0.conf").exists()
    left = [p.name for p in workspace.rglob("*") if p.name.endswith(".tmp")]
    assert left == [], left
    recorded = state(workspace)
    assert "public_key" not in recorded["b"]["computed"]
    assert {n: recorded[n]["status"]["phase"] for n in "abcd"} == {"a": "FAILED", "b": "FAILED", "c": "INIT", "d": "INIT"}
    monkeypatch.setattr(os, "replace", real)
    assert skyplan("apply", "--auto-approve").exit_code == 0  # the retry converges
    assert (workspace / "wireguard/a/wgsky0.conf").exists() and (workspace / ".skyplan/keys/b.key").exists()


def test_keys_are_in_place_and_durable_before_any_config_that_holds_them(workspace, skyplan, monkeypatch):
    import os

    from skyplan import atomic

    clusters = [(f"c{i:02d}", f"192.0.2.{i + 1}:51820", [f"10.{i}.0.0/16"]) for i in range(20)]
    links = [(f"c{i:02d}-c{i + 1:02d}", f"c{i:02d}", f"c{i + 1:02d}") for i in range(19)]
    (workspace / "links.yaml").write_text(links_yaml(clusters, links))
    events: list[str] = []
    real_replace, real_fsync = os.replace, os.fsync

    def replace(source, target, *args, **kwargs):
        events.append(os.path.basename(os.fspath(target)))
        return real_replace(source, target, *args, **kwargs)

    def fsync(fd):
        events.append("sync")
        return real_fsync(fd)

    real_syncfs = atomic._syncfs_call()
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(atomic, "_syncfs_call", lambda: (lambda fd: events.append("sync") or (real_syncfs(fd) if real_syncfs else 0)))
    assert skyplan("apply", "--auto-approve").exit_code == 0
    keys = [i for i, e in enumerate(events) if e.endswith(".key")]
    configs = [i for i, e in enumerate(events) if e.endswith(".conf")]
    intent = events.index("state.json")
    assert len(keys) == len(configs) == 20
    # The intent is on disk before any key; each key's data before its name; every key's name
    # before the first config is put in place.
    assert intent < keys[0] and "sync" in events[intent + 1 : keys[0]]
    assert max(keys) < min(configs) and "sync" in events[max(keys) + 1 : min(configs)]
