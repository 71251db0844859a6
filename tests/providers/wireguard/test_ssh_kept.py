"""provider.ssh.keep_connections without a gateway: the setting, the private folder and its
attacks (a symlink, another owner, a wider mode, a folder in the workspace), socket names."""

from __future__ import annotations

import os
import re
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from providers.wireguard import kept, ssh
from providers.wireguard.gateways import keep_problem
from providers.wireguard.settings import SshSettings, WireGuardSettings

NOBODY = 65534


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch):
    """A private XDG_RUNTIME_DIR of the test's own, short enough for socket paths."""
    base = Path(tempfile.mkdtemp(prefix="sp-rt-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    yield base
    import shutil

    shutil.rmtree(base, ignore_errors=True)


# -- the setting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "seconds"), [(None, 0.0), (0, 0.0), (False, 0.0), (60, 60.0), ("60s", 60.0), ("10m", 600.0), (3600, 3600.0)])
def test_keep_connections_is_off_by_default_or_a_duration(given, seconds) -> None:
    settings = SshSettings() if given is None else SshSettings(keep_connections=given)
    assert settings.keep_connections == seconds


@pytest.mark.parametrize(("given", "message"), [(True, "must say how long"), (0.5, "0 (off) or between 1"), (3601, "between 0 and 3600"), ("2h", "not a duration"), ("forever", "not a duration"), (-1, "between 0 and 3600")])
def test_keep_connections_refuses_what_is_no_sane_duration(given, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SshSettings(keep_connections=given)


def test_the_cli_says_where_a_bad_keep_connections_is(workspace: Path, skyplan) -> None:
    (workspace / "links.yaml").write_text("version: 1\nprovider:\n  ssh: {keep_connections: forever}\n")
    result = skyplan("validate")
    assert result.exit_code == 1
    assert "3:27: provider.ssh.keep_connections: 'forever' is not a duration" in result.output
    assert "Traceback" not in result.output
    (workspace / "links.yaml").write_text("version: 1\nprovider:\n  ssh: {keep_connections: 60s}\n")
    assert skyplan("validate").exit_code == 0


def test_gateways_carry_the_setting() -> None:
    from providers.wireguard.gateways import gateway_for

    settings = WireGuardSettings(ssh=SshSettings(keep_connections="2m"))

    class View:
        attributes = {"gateway": "gw"}

    assert gateway_for(settings, Path("/ws"), View()).keep == 120.0
    assert gateway_for(WireGuardSettings(), Path("/ws"), View()).keep == 0.0
    with pytest.raises(ssh.GatewayAddressError):
        ssh.Gateway("gw", keep=7200)


# -- the folder ------------------------------------------------------------------------------------------


def test_the_folder_is_made_private_in_the_runtime_dir(runtime: Path) -> None:
    folder = kept.private_folder()
    assert folder == runtime / "skyplan" / "ssh"
    for made in (folder, folder.parent):
        info = os.lstat(made)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    assert kept.private_folder() == folder  # and found again as it is


def test_without_runtime_dir_it_is_under_the_cache_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kept.folder_path() == tmp_path / "skyplan" / "ssh"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/someone")
    assert kept.folder_path() == Path("/home/someone/.cache/skyplan/ssh")


def test_a_planted_symlink_for_the_folder_is_refused_and_not_followed(runtime: Path) -> None:
    elsewhere = Path(tempfile.mkdtemp(prefix="sp-else-"))  # a 0700 folder of ours: still refused
    try:
        (runtime / "skyplan").mkdir(mode=0o700)
        (runtime / "skyplan" / "ssh").symlink_to(elsewhere)
        with pytest.raises(kept.KeptFolderError, match="is a symlink"):
            kept.private_folder()
        assert list(elsewhere.iterdir()) == []
        assert (runtime / "skyplan" / "ssh").is_symlink()  # left as found, for the user to see
    finally:
        os.rmdir(elsewhere)


def test_a_symlink_one_level_up_is_refused_too(runtime: Path) -> None:
    elsewhere = Path(tempfile.mkdtemp(prefix="sp-else-"))
    try:
        (runtime / "skyplan").symlink_to(elsewhere)
        with pytest.raises(kept.KeptFolderError, match="is a symlink"):
            kept.private_folder()
    finally:
        import shutil

        shutil.rmtree(elsewhere)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder another user's needs root")
def test_a_folder_of_another_user_is_refused(runtime: Path) -> None:
    folder = runtime / "skyplan" / "ssh"
    folder.mkdir(parents=True, mode=0o700)
    (runtime / "skyplan").chmod(0o700)
    os.chown(folder, NOBODY, NOBODY)
    with pytest.raises(kept.KeptFolderError, match=f"belongs to user {NOBODY}"):
        kept.private_folder()


@pytest.mark.parametrize(("where", "mode", "message"), [("ssh", 0o755, "mode 0755; others could reach"), ("ssh", 0o710, "mode 0710"), ("skyplan", 0o777, "others could swap")])
def test_a_folder_others_may_enter_or_change_is_refused_not_tightened(runtime: Path, where: str, mode: int, message: str) -> None:
    folder = runtime / "skyplan" / "ssh"
    folder.mkdir(parents=True, mode=0o700)
    (runtime / "skyplan").chmod(0o700)
    (runtime / "skyplan" / ("ssh" if where == "ssh" else "")).chmod(mode)
    with pytest.raises(kept.KeptFolderError, match=message):
        kept.private_folder()
    assert stat.S_IMODE(os.lstat(runtime / "skyplan" / ("ssh" if where == "ssh" else "")).st_mode) == mode


def test_a_file_where_the_folder_should_be_is_refused(runtime: Path) -> None:
    (runtime / "skyplan").mkdir(mode=0o700)
    (runtime / "skyplan" / "ssh").write_text("not a folder")
    with pytest.raises(kept.KeptFolderError, match="is not a folder"):
        kept.private_folder()


def test_a_runtime_dir_too_long_for_a_socket_is_refused(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/tmp/" + "x" * 80)
    with pytest.raises(kept.KeptFolderError, match="too long"):
        kept.private_folder()
    assert not Path("/tmp/" + "x" * 80).exists()


def test_a_folder_inside_the_workspace_or_its_checkout_is_refused(monkeypatch, runtime: Path) -> None:
    # Short paths: the runtime dir is put inside a workspace on purpose.
    checkout = Path(tempfile.mkdtemp(prefix="sp-co-"))
    try:
        (checkout / ".git").mkdir()
        workspace = checkout / "infra"
        workspace.mkdir()
        settings = WireGuardSettings(ssh=SshSettings(keep_connections=60))
        for base in (workspace / "run", checkout / "run"):
            base.mkdir(mode=0o700)
            monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
            problem = keep_problem(settings, workspace)
            assert problem is not None and "is inside" in problem and str(base / "skyplan" / "ssh") in problem
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        assert keep_problem(settings, workspace) is None
        assert keep_problem(WireGuardSettings(), workspace) is None  # off: nothing looked at
    finally:
        import shutil

        shutil.rmtree(checkout)


def test_a_refused_folder_fails_every_gateway_before_any_connection(runtime: Path, monkeypatch) -> None:
    from providers.wireguard import gateways

    (runtime / "skyplan").mkdir(mode=0o777)
    (runtime / "skyplan").chmod(0o777)
    calls = []
    monkeypatch.setattr(ssh, "_run_bounded", lambda argv, **kw: calls.append(argv))

    class View:
        def __init__(self, name):
            self.name, self.attributes = name, {"gateway": name}

    settings = WireGuardSettings(ssh=SshSettings(keep_connections=60))
    with ssh.Connections() as conns:
        work = gateways.run_all(conns, settings, Path("/nowhere"), [View("a"), View("b")], lambda gw, view: conns.run(gw, ["true"]))
    assert work.values == {} and set(work.errors) == {"a", "b"}
    assert all("others could swap" in str(e) for e in work.errors.values())
    assert calls == []
    # Asked of Connections directly, it is the gateway's error, not a crash of run_many.
    with ssh.Connections() as conns:
        outcome = conns.run_many([ssh.Gateway("a", keep=60)], lambda gw: conns.run(gw, ["true"]))[0]
    assert isinstance(outcome.error, ssh.GatewayError) and "others could swap" in str(outcome.error)


# -- socket names ----------------------------------------------------------------------------------------


def test_the_name_changes_with_every_input(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host gw\n  HostName 192.0.2.1\n")
    known = tmp_path / "known_hosts"
    known.write_text("192.0.2.1 ssh-ed25519 AAAA\n")
    argv = ["ssh", "-F", str(config), "-o", "BatchMode=yes", "--", "gw"]
    resolved = f"hostname 192.0.2.1\nuser root\nuserknownhostsfile {known}\n".encode()
    name = kept.socket_name(argv, config, resolved)
    assert name == kept.socket_name(argv, config, resolved) and len(name) == kept.NAME_HEX
    names = {name}
    names.add(kept.socket_name([*argv[:-1], "gw2"], config, resolved))  # another destination
    names.add(kept.socket_name([*argv[:4], "BatchMode=no", *argv[5:]], config, resolved))  # another option
    names.add(kept.socket_name(argv, config, resolved.replace(b"192.0.2.1", b"192.0.2.2")))  # resolves elsewhere
    config.write_text("Host gw\n  HostName 192.0.2.1\n# edited\n")
    names.add(kept.socket_name(argv, config, resolved))  # the config file changed
    known.write_text("192.0.2.1 ssh-ed25519 BBBB\n")
    names.add(kept.socket_name(argv, config, resolved))  # known_hosts changed
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent")
    names.add(kept.socket_name(argv, config, resolved))  # another agent
    assert len(names) == 7


def test_an_included_file_is_part_of_the_name(tmp_path: Path) -> None:
    included = tmp_path / "more.conf"
    included.write_text("Host gw\n  HostName 192.0.2.1\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Include {tmp_path}/*.conf\n")
    argv = ["ssh", "-F", str(config), "--", "gw"]
    before = kept.socket_name(argv, config, b"hostname 192.0.2.1\n")
    included.write_text("Host gw\n  HostName 192.0.2.1\n  ProxyJump elsewhere\n")
    assert kept.socket_name(argv, config, b"hostname 192.0.2.1\n") != before


def test_files_named_with_tokens_are_not_kept() -> None:
    assert kept.socket_name(["ssh", "--", "gw"], None, b"userknownhostsfile ~/.ssh/known_hosts_%h\n") is None


def test_only_our_own_sockets_are_listed(runtime: Path) -> None:
    folder = kept.private_folder()
    ours = socket.socket(socket.AF_UNIX)
    ours.bind(str(folder / "a"))
    (folder / "link").symlink_to(folder / "a")
    (folder / "file").write_text("")
    try:
        assert kept.sockets(folder) == [folder / "a"]
    finally:
        ours.close()


def test_end_kept_without_a_folder_ends_nothing(runtime: Path) -> None:
    assert ssh.end_kept() == 0


def test_identity_files_named_with_variables_and_tokens_are_followed(tmp_path: Path, monkeypatch) -> None:
    # As the README's CI config names them: ${HOME} in the path; ssh -G prints them unexpanded.
    monkeypatch.setenv("HOME", str(tmp_path))
    key = tmp_path / "id_root_192.0.2.1"
    key.write_text("key one")
    resolved = b"user root\nhostname 192.0.2.1\nidentityfile ${HOME}/id_%r_%h\nuserknownhostsfile /dev/null\n"
    argv = ["ssh", "--", "gw"]
    before = kept.socket_name(argv, None, resolved)
    assert before is not None
    key.write_text("key two, rotated")
    assert kept.socket_name(argv, None, resolved) != before
