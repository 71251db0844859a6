"""Gateways end to end: skyplan and skyctl drive live WireGuard hosts over SSH, shown with ping.

One lab for the module: gateways a, b and c, each a network and mount namespace with its own
sshd, /etc/wireguard and wireguard-go; skyplan's `ssh` runs in the controller namespace. Every
test starts from fresh gateways (`GatewayLab.reset`) and a workspace of its own. Nothing here
runs a hook: the gateways are changed by skyplan itself.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .gateways import CONTROLLER, GatewayLab, running_lab
from .netns import _list_namespaces, _namespace_pids

pytestmark = pytest.mark.e2e

INTERFACE = "wgsky0"
KEY_FILE = f"/etc/wireguard/{INTERFACE}.key"
CONF_FILE = f"/etc/wireguard/{INTERFACE}.conf"
SUBNETS = {"a": ["10.1.0.0/16"], "b": ["10.2.0.0/16"], "c": ["10.3.0.0/16"]}
LINKED = [("a", "b"), ("b", "c")]
REPO = Path(__file__).resolve().parents[2]


# -- the lab, shared by the module ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(gateway_prerequisites: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayLab]:
    with pytest.MonkeyPatch.context() as patch, running_lab(["a", "b", "c"], tmp_path_factory.mktemp("gateways"), patch) as lab:
        yield lab
    # Nothing of the lab outlives it: no namespace, no process that was started for it.
    left = [ns for ns in _list_namespaces() if ns == lab.name or ns.startswith(lab.name + "-")]
    assert left == [], f"namespaces left behind: {left}"
    assert _processes_mentioning(str(lab.workdir)) == [], "processes of the lab outlived it"


@pytest.fixture
def world(lab: GatewayLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh gateways and an empty workspace (the current folder) holding the lab's ssh config."""
    lab.reset()
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("SKYPLAN_BACKEND", raising=False)
    monkeypatch.delenv("SKYPLAN_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    shutil.copy(lab.ssh_config, workspace / "ssh_config")  # named relative to links.yaml, as users would
    return workspace


# -- helpers --------------------------------------------------------------------------------------


def gateway_of(lab: GatewayLab, cluster: str) -> str:
    """a and b by Host alias of the ssh config, c by URL: both forms users write."""
    return lab.url(cluster) if cluster == "c" else cluster


def links_yaml(lab: GatewayLab, links: list[tuple[str, str]], subnets: dict[str, list[str]] | None = None, clusters=("a", "b", "c")) -> str:
    subnets = SUBNETS if subnets is None else subnets
    declared_clusters = "".join(
        f"  - name: {name}\n"
        f"    endpoint: {lab.endpoint(name)}\n"
        f"    subnets: [{', '.join(subnets[name])}]\n"
        f"    gateway: {gateway_of(lab, name)}\n"
        for name in clusters
    )
    declared_links = "".join(f"  - name: {s}-{t}\n    source: {s}\n    target: {t}\n" for s, t in links)
    return (
        "version: 1\n"
        "provider:\n"
        "  name: wireguard\n"
        f"  interface: {INTERFACE}\n"
        "  address_pool: 100.96.0.0/24\n"
        "  persistent_keepalive: 25\n"
        "  ssh:\n"
        "    config: ssh_config\n"
        "    timeout: 20s\n"
        f"clusters:\n{declared_clusters}" + (f"links:\n{declared_links}" if links else "")
    )


def write_config(workspace: Path, text: str) -> None:
    (workspace / "links.yaml").write_text(text)


def run_ok(cli, *args: str, code: int = 0) -> str:
    result = cli(*args)
    assert result.exit_code == code, f"{' '.join(args)} exited with {result.exit_code}, not {code}:\n{result.output}"
    return result.output


def state_resources(skyplan) -> dict[str, dict]:
    shown = json.loads(run_ok(skyplan, "show", "--json"))
    return {r["address"]: r["values"] for r in shown["values"]["root_module"]["resources"]}


def overlay_addresses(skyplan) -> dict[str, str]:
    return {a.split(".", 1)[1]: v["address"] for a, v in state_resources(skyplan).items() if a.startswith("cluster.")}


def public_keys(skyplan) -> dict[str, str]:
    return {a.split(".", 1)[1]: v["public_key"] for a, v in state_resources(skyplan).items() if a.startswith("cluster.")}


def drift_section(output: str) -> str:
    """The part of a plan under `Changed outside skyplan:`, up to the actions."""
    assert "Changed outside skyplan:" in output, output
    section = output.split("Changed outside skyplan:", 1)[1]
    return section.split("skyplan will perform the following actions:", 1)[0]


def on_gateway(lab: GatewayLab, gateway: str, path: str) -> bytes | None:
    """A file as the gateway itself holds it (read in its mount namespace, not over SSH)."""
    try:
        return lab.path_on(gateway, path).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None


def mode_on_gateway(lab: GatewayLab, gateway: str, path: str) -> str:
    return lab.run(gateway, ["stat", "-c", "%a", path]).stdout.strip()


def routes(lab: GatewayLab, gateway: str) -> set[str]:
    """Destinations routed through the WireGuard interface (main table, IPv4)."""
    listed = json.loads(lab.run(gateway, ["ip", "-j", "-4", "route", "show", "dev", INTERFACE]).stdout or "[]")
    return {r["dst"] if "/" in r["dst"] else f"{r['dst']}/32" for r in listed if r.get("protocol") != "kernel"}


def interface_up(lab: GatewayLab, gateway: str) -> bool:
    return lab.run(gateway, ["ip", "link", "show", "dev", INTERFACE], check=False).returncode == 0


def snapshot(lab: GatewayLab, gateway: str) -> tuple:
    """What a change to a gateway would alter: its files, and its interface's peers and routes."""
    live = None
    if interface_up(lab, gateway):
        dump = lab.wg_dump(gateway)
        live = (dump.public_key, dump.listen_port, sorted((k, p.endpoint, p.allowed_ips) for k, p in dump.peers.items()), sorted(routes(lab, gateway)))
    listing = lab.run(gateway, ["ls", "-la", "--time-style=+", "/etc/wireguard"]).stdout
    return (on_gateway(lab, gateway, KEY_FILE), on_gateway(lab, gateway, CONF_FILE), listing, live)


def reaches(lab: GatewayLab, source: str, address: str) -> bool:
    """Whether `source` gets an answer from `address` within a few seconds.

    A handshake sent while its peer was still being changed (a peer pushed a moment before the
    gateway it dials) is retried by WireGuard only after 5 s (REKEY_TIMEOUT), with up to a third
    of a second of jitter, and when both ends are changed one after the other the retry can be
    lost too: a working link answers within two retries, a missing one never does. (8 s, one
    retry, failed about one run in twelve on 0.6.0's code as well, once the lab's sessions
    stopped running the machine's ~/.bashrc and the pushes came closer together.)
    """
    return wait_for(lambda: lab.ping(source, address, attempts=1), seconds=12, step=0.1)


def wait_for(condition, seconds: float = 15.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def applied(lab: GatewayLab, world: Path, skyplan, links=LINKED) -> dict[str, str]:
    """Apply the three gateways with `links`; their overlay addresses."""
    write_config(world, links_yaml(lab, links))
    output = run_ok(skyplan, "apply", "--auto-approve")
    assert "Apply complete!" in output, output
    return overlay_addresses(skyplan)


# -- 1. who reaches whom --------------------------------------------------------------------------


def test_apply_links_gateways_and_only_linked_ones_reach_each_other(lab: GatewayLab, world: Path, skyplan) -> None:
    write_config(world, links_yaml(lab, LINKED))
    output = run_ok(skyplan, "apply", "--auto-approve")
    assert "Apply complete! Resources: 5 added, 0 changed, 0 destroyed." in output
    overlay = overlay_addresses(skyplan)
    assert sorted(overlay) == ["a", "b", "c"]

    assert reaches(lab, "a", overlay["b"]) and reaches(lab, "b", overlay["a"]), "link a-b carries no traffic"
    assert reaches(lab, "b", overlay["c"]) and reaches(lab, "c", overlay["b"]), "link b-c carries no traffic"
    assert not lab.ping("a", overlay["c"], attempts=1), "a reaches c, but no link joins them"
    assert not lab.ping("c", overlay["a"], attempts=1), "c reaches a, but no link joins them"

    # Each interface runs with the key the state records, and holds exactly its links' peers.
    public = public_keys(skyplan)
    assert len(set(public.values())) == 3
    for gateway in lab.gateways:
        assert lab.wg_dump(gateway).public_key == public[gateway]
    assert set(lab.wg_dump("a").peers) == {public["b"]}
    assert set(lab.wg_dump("b").peers) == {public["a"], public["c"]}
    assert set(lab.wg_dump("c").peers) == {public["b"]}
    # The file on each gateway is the wg-quick file, 0600, and passes wg-quick strip there.
    for gateway in lab.gateways:
        assert mode_on_gateway(lab, gateway, CONF_FILE) == "600"
        stripped = lab.run(gateway, ["wg-quick", "strip", CONF_FILE]).stdout
        assert "PrivateKey" in stripped and stripped.count("[Peer]") == len(lab.wg_dump(gateway).peers)

    # Read back live, the gateways match the configuration.
    again = run_ok(skyplan, "plan", "--detailed-exitcode")
    assert "No changes. Links match the configuration." in again
    assert "Changed outside skyplan:" not in again


# -- 2. an apply that adds a link drops no packet of the others -----------------------------------


class Pinger:
    """`ping -i 0.2` from a gateway, in the background; every reply kept with its icmp_seq."""

    def __init__(self, lab: GatewayLab, source: str, address: str) -> None:
        self.process = subprocess.Popen(
            [*lab.command_prefix(source), "ping", "-n", "-D", "-O", "-i", "0.2", "-W", "1", address],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self.replies: dict[int, float] = {}  # icmp_seq -> unix time of the reply (ping's -D)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "bytes from" in line and "icmp_seq=" in line:
                stamp = float(line.split("]", 1)[0].lstrip("["))
                seq = int(line.split("icmp_seq=", 1)[1].split()[0])
                self.replies[seq] = stamp

    def stop(self) -> tuple[int, int]:
        """Interrupt ping; (transmitted, received) from its summary."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        summary = next(line for line in self.lines if "packets transmitted" in line)
        transmitted = int(summary.split()[0])
        received = int(summary.split(",")[1].split()[0])
        return transmitted, received

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def test_a_continuous_ping_loses_nothing_across_an_apply_that_adds_a_link(lab: GatewayLab, world: Path, skyplan) -> None:
    overlay = applied(lab, world, skyplan)
    public = public_keys(skyplan)
    config_before = on_gateway(lab, "b", CONF_FILE)

    pinger = Pinger(lab, "a", overlay["b"])
    try:
        assert wait_for(lambda: len(pinger.replies) >= 3, seconds=10), "".join(pinger.lines)
        handshake_before = lab.wg_dump("a").peers[public["b"]].latest_handshake
        started = time.time()
        write_config(world, links_yaml(lab, [*LINKED, ("a", "c")]))
        output = run_ok(skyplan, "apply", "--auto-approve")
        finished = time.time()
        assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in output
        seq_at_end = max(pinger.replies, default=0)
        assert wait_for(lambda: max(pinger.replies, default=0) >= seq_at_end + 5, seconds=10)
        transmitted, received = pinger.stop()
    finally:
        pinger.kill()

    answered = sorted(pinger.replies)
    assert answered == list(range(1, answered[-1] + 1)), f"requests went unanswered: {''.join(pinger.lines)}"
    assert transmitted - received <= 1, "".join(pinger.lines)  # at most the one in flight at SIGINT
    assert min(pinger.replies.values()) < started and max(pinger.replies.values()) > finished, "the ping did not span the apply"
    # The session of a-b survived a's in-place change: no new handshake was needed.
    assert lab.wg_dump("a").peers[public["b"]].latest_handshake == handshake_before
    assert on_gateway(lab, "b", CONF_FILE) == config_before, "b was rewritten, but the new link does not concern it"

    # The new link works, and its routes exist although no on_change hook is configured.
    assert "on_change" not in (world / "links.yaml").read_text()
    assert reaches(lab, "a", overlay["c"]) and reaches(lab, "c", overlay["a"]), "the new link a-c carries no traffic"
    assert {f"{overlay['c']}/32", "10.3.0.0/16", f"{overlay['b']}/32", "10.2.0.0/16"} == routes(lab, "a")
    assert {f"{overlay['a']}/32", "10.1.0.0/16", f"{overlay['b']}/32", "10.2.0.0/16"} == routes(lab, "c")

    # Removed again, the link takes its routes with it: nothing is left pointing at a gone peer.
    write_config(world, links_yaml(lab, LINKED))
    assert "0 added, 0 changed, 1 destroyed." in run_ok(skyplan, "apply", "--auto-approve")
    assert routes(lab, "a") == {f"{overlay['b']}/32", "10.2.0.0/16"}
    assert routes(lab, "c") == {f"{overlay['b']}/32", "10.2.0.0/16"}
    assert not lab.ping("a", overlay["c"], attempts=1)
    assert reaches(lab, "a", overlay["b"])


# -- 3. drift of the running interface, shown and repaired -----------------------------------------


def test_a_peer_removed_by_hand_is_drift_and_apply_repairs_it(lab: GatewayLab, world: Path, skyplan) -> None:
    overlay = applied(lab, world, skyplan)
    public = public_keys(skyplan)
    lab.run("b", ["wg", "set", INTERFACE, "peer", public["a"], "remove"])
    assert not lab.ping("a", overlay["b"], attempts=1)

    output = run_ok(skyplan, "plan", "--detailed-exitcode", code=2)
    drift = drift_section(output)
    assert "link.a-b" in drift or "cluster.b" in drift, drift
    assert "cluster.c" not in drift and "link.b-c" not in drift, drift

    output = run_ok(skyplan, "apply", "--auto-approve")
    assert "Apply complete!" in output
    assert reaches(lab, "a", overlay["b"]) and reaches(lab, "b", overlay["a"]), "the removed peer was not put back"
    assert set(lab.wg_dump("b").peers) == {public["a"], public["c"]}
    assert public_keys(skyplan) == public  # repaired, not replaced
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")


def test_interfaces_taken_down_are_drift_and_apply_brings_them_up(lab: GatewayLab, world: Path, skyplan) -> None:
    overlay = applied(lab, world, skyplan)
    public = public_keys(skyplan)
    lab.run("c", ["wg-quick", "down", INTERFACE], env={"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"})
    lab.run("a", ["ip", "link", "del", INTERFACE])
    assert wait_for(lambda: not interface_up(lab, "a") and not interface_up(lab, "c"), seconds=5)
    assert not lab.ping("b", overlay["c"], attempts=1) and not lab.ping("b", overlay["a"], attempts=1)

    output = run_ok(skyplan, "plan", "--detailed-exitcode", code=2)
    drift = drift_section(output)
    assert "cluster.a" in drift and "cluster.c" in drift, drift

    output = run_ok(skyplan, "apply", "--auto-approve")
    assert "Apply complete!" in output
    assert reaches(lab, "a", overlay["b"]) and reaches(lab, "b", overlay["a"]), "a's interface was not brought back"
    assert reaches(lab, "c", overlay["b"]) and reaches(lab, "b", overlay["c"]), "c's interface was not brought back"
    assert {lab.wg_dump(g).public_key for g in ("a", "c")} == {public["a"], public["c"]}
    assert f"{overlay['b']}/32" in routes(lab, "a") and "10.2.0.0/16" in routes(lab, "c")
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")


# -- 4. keys: born on the gateways, never on the controller ---------------------------------------


def test_private_keys_live_on_the_gateways_and_nowhere_on_the_controller(lab: GatewayLab, world: Path, skyplan) -> None:
    write_config(world, links_yaml(lab, LINKED))
    outputs = [run_ok(skyplan, "apply", "--auto-approve")]
    outputs.append(run_ok(skyplan, "show", "--json"))
    outputs.append(run_ok(skyplan, "plan", "--json"))
    outputs.append(run_ok(skyplan, "plan"))
    run_ok(skyplan, "plan", "--out", "saved.plan")
    outputs.append(run_ok(skyplan, "show", "--json", "saved.plan"))
    outputs.append(run_ok(skyplan, "show", "saved.plan"))
    public = public_keys(skyplan)

    private: dict[str, str] = {}
    for gateway in lab.gateways:
        key = on_gateway(lab, gateway, KEY_FILE)
        assert key is not None, f"no key file on gateway {gateway}"
        assert mode_on_gateway(lab, gateway, KEY_FILE) == "600"
        assert mode_on_gateway(lab, gateway, "/etc/wireguard") == "700"
        private[gateway] = key.decode().strip()
        # The key the state records as public is the one of this file, computed on the gateway.
        derived = lab.run(gateway, ["sh", "-c", f"wg pubkey < {KEY_FILE}"]).stdout.strip()
        assert derived == public[gateway]
        # The running config holds it too, and no other gateway has it.
        assert lab.run(gateway, ["wg", "show", INTERFACE, "private-key"]).stdout.strip() == private[gateway]
    assert len(set(private.values())) == 3
    # Each key lives in its own gateway's mount namespace only: not on the controller's /etc.
    for elsewhere in ("controller",):
        assert lab.run(elsewhere, ["test", "-e", KEY_FILE], check=False).returncode != 0
    assert not Path(KEY_FILE).exists() or Path(KEY_FILE).read_text().strip() not in private.values()

    # Nothing for gateway clusters is written on the controller: no key store, no config folder.
    keys_folder = world / ".skyplan" / "keys"
    assert not keys_folder.exists() or sorted(p.name for p in keys_folder.iterdir()) == []
    assert not (world / "wireguard").exists()

    # No private key anywhere: every file of the workspace (state, backup, lock info, saved plan,
    # anything else) and every output, as text and as raw key bytes.
    needles = {g: [k.encode(), base64.b64decode(k)] for g, k in private.items()}
    haystacks: dict[str, bytes] = {f"output {i}": text.encode() for i, text in enumerate(outputs)}
    for path in sorted(world.rglob("*")):
        if path.is_file() and not path.is_symlink():
            haystacks[str(path.relative_to(world))] = path.read_bytes()
    assert ".skyplan/state.json" in haystacks
    for where, content in haystacks.items():
        for gateway, forms in needles.items():
            assert not any(form in content for form in forms), f"the private key of {gateway} is in {where}"
    state = json.loads((world / ".skyplan" / "state.json").read_text())
    assert "private_key" not in json.dumps(state)


# -- 5. a host key that is not the gateway's stops everything --------------------------------------


# -- 5. what a run costs each gateway: logins and ssh processes --------------------------------------


def counting_ssh(folder: Path, lab: GatewayLab, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `ssh` first on PATH that logs each ssh process's options and destination (one line each,
    not the remote command), then runs the lab's."""
    bin_dir, log = folder / "counting-bin", folder / "ssh-processes.log"
    bin_dir.mkdir()
    log.touch()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(
        "#!/bin/sh\nline= last=\n"
        'for arg in "$@"; do line="$line $arg"; [ -n "$last" ] && break; [ "$arg" = "--" ] && last=1; done\n'
        f'echo "$line" >> {log}\nexec {lab.bin_dir / "ssh"} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def logins(lab: GatewayLab) -> dict[str, int]:
    """Accepted SSH logins so far, by gateway, from each sshd's own log."""
    return {g: (lab.workdir / g / "sshd.log").read_text(errors="replace").count("Accepted publickey") for g in ("a", "b", "c")}


def ssh_processes(log: Path, lab: GatewayLab) -> dict[str, list[str]]:
    """The logged ssh processes by the gateway they name (the Host alias or the URL's address)."""
    names = {"a": "a", "b": "b", lab.underlay["c"]: "c"}
    found: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    for line in log.read_text().splitlines():
        words = line.split()
        target = words[words.index("--") + 1] if "--" in words else None
        found[names.get(target, "?")].append(line) if target in names else found.setdefault("?", []).append(line)
    return found


def no_ssh_left_in_the_controller(lab: GatewayLab) -> bool:
    """Only the namespace's holder runs in the controller: every master ended with the command."""
    return wait_for(lambda: len(_namespace_pids(lab.namespace(CONTROLLER))) == 1, seconds=5, step=0.05)


def test_an_apply_logs_in_to_each_gateway_once_its_refresh_and_changes_sharing_the_login(
    lab: GatewayLab, world: Path, skyplan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied(lab, world, skyplan)
    log = counting_ssh(tmp_path, lab, monkeypatch)

    # One-link change a-c: the refresh reads all three, the apply rewrites a and c. Each gateway
    # is logged in to once, by the refresh's first command; the apply reuses those connections
    # (no second login on a and c, no ssh -N to reach them again), and nothing asks or ends a
    # master through an ssh process (-O): skyplan does that over the control sockets.
    before = logins(lab)
    write_config(world, links_yaml(lab, [*LINKED, ("a", "c")]))
    assert "Resources: 1 added, 0 changed, 0 destroyed." in run_ok(skyplan, "apply", "--auto-approve")
    after = logins(lab)
    assert {g: after[g] - before[g] for g in after} == {"a": 1, "b": 1, "c": 1}
    processes = ssh_processes(log, lab)
    assert processes.get("?", []) == [], processes
    assert {g: len(lines) for g, lines in processes.items()} == {"a": 2, "b": 1, "c": 2}, processes  # inspect (+ push)
    every = [line for lines in processes.values() for line in lines]
    assert not any(" -O " in f" {line} " or " -N " in f" {line} " for line in every), every
    # The first command of each gateway opened its shared connection; the pushes went through it.
    assert all("ControlMaster=yes" in lines[0] and "ControlPersist=" in lines[0] for lines in processes.values())
    assert all("ControlMaster=no" in line for g in ("a", "c") for line in processes[g][1:])
    assert no_ssh_left_in_the_controller(lab), "an ssh master outlived the apply"

    # A plan with nothing to change: one login and one ssh process per gateway.
    log.write_text("")
    before = logins(lab)
    assert "No changes." in run_ok(skyplan, "plan")
    after = logins(lab)
    assert {g: after[g] - before[g] for g in after} == {"a": 1, "b": 1, "c": 1}
    assert {g: len(lines) for g, lines in ssh_processes(log, lab).items()} == {"a": 1, "b": 1, "c": 1}
    assert no_ssh_left_in_the_controller(lab), "an ssh master outlived the plan"


def test_an_apply_whose_refresh_connection_died_reaches_the_gateway_again_before_changing_any(
    lab: GatewayLab, world: Path, skyplan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh's shared connections are reused only while they answer: a master that ended
    between refresh and apply (ControlPersist ran out while the user read the plan; here it is
    killed) is replaced by a new login, host key checked, before anything is changed."""
    applied(lab, world, skyplan)
    write_config(world, links_yaml(lab, [*LINKED, ("a", "c")]))
    from skyplan_wireguard import provider as wireguard

    real_reach = wireguard._GatewayWork.reach
    killed = []

    def reach_after_killing_the_masters(self, views):
        for pid in _namespace_pids(lab.namespace(CONTROLLER)):  # the holder is `sleep`, never `ssh`
            if Path(f"/proc/{pid}/comm").read_text().strip() == "ssh":
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        impersonate(lab, "c", "b")  # and c now shows another host key: it must be checked again
        return real_reach(self, views)

    monkeypatch.setattr(wireguard._GatewayWork, "reach", reach_after_killing_the_masters)
    before = {g: on_gateway(lab, g, CONF_FILE) for g in ("a", "b", "c")}
    result = skyplan("apply", "--auto-approve")
    assert killed, "no master was running after the refresh"
    assert result.exit_code != 0 and "host key" in result.output, result.output
    assert {g: on_gateway(lab, g, CONF_FILE) for g in ("a", "b", "c")} == before, "a gateway changed after a refused host key"
    assert no_ssh_left_in_the_controller(lab)


def impersonate(lab: GatewayLab, victim: str, impostor: str) -> None:
    """known_hosts holds `impostor`'s host key at `victim`'s address: what a man in the middle shows."""
    lines = []
    for gateway in lab.gateways:
        line = lab.host_key_line(gateway)
        if gateway == victim:
            line = f"{lab.underlay[victim]} {lab.host_key_line(impostor).split(' ', 1)[1]}"
        lines.append(line + "\n")
    lab.known_hosts.write_text("".join(lines))


def test_a_wrong_host_key_stops_the_command_and_no_gateway_changes(lab: GatewayLab, world: Path, skyplan) -> None:
    applied(lab, world, skyplan)
    before = {g: snapshot(lab, g) for g in lab.gateways}
    state_before = (world / ".skyplan" / "state.json").read_bytes()
    impersonate(lab, "b", impostor="c")
    # A change that b has no part in: it is still refused, since b cannot be trusted to be read.
    write_config(world, links_yaml(lab, [*LINKED, ("a", "c")]))

    for command in (("plan",), ("apply", "--auto-approve")):
        result = skyplan(*command)
        assert result.exit_code == 1, result.output
        assert "host key" in result.output and "gateway b" in result.output, result.output
        assert "Apply complete" not in result.output and "Traceback" not in result.output
    assert {g: snapshot(lab, g) for g in lab.gateways} == before, "a gateway was changed"
    assert (world / ".skyplan" / "state.json").read_bytes() == state_before
    assert lab.known_hosts.read_text().count(lab.underlay["b"]) == 1  # nothing learnt or replaced

    # With the real host key back, the same change applies.
    lab.write_known_hosts()
    assert "Apply complete! Resources: 1 added" in run_ok(skyplan, "apply", "--auto-approve")


def test_a_wrong_host_key_on_a_first_apply_changes_no_gateway(lab: GatewayLab, world: Path, skyplan) -> None:
    impersonate(lab, "c", impostor="a")
    write_config(world, links_yaml(lab, LINKED))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert "host key" in result.output and lab.url("c") in result.output, result.output
    for gateway in lab.gateways:
        assert on_gateway(lab, gateway, KEY_FILE) is None, f"a key was generated on gateway {gateway}"
        assert on_gateway(lab, gateway, CONF_FILE) is None and not interface_up(lab, gateway)


# -- 6. a gateway that is down fails only its own changes ------------------------------------------


def test_a_stopped_sshd_fails_only_its_clusters_changes_and_apply_converges_once_it_is_back(
    lab: GatewayLab, world: Path, skyplan
) -> None:
    overlay = applied(lab, world, skyplan)
    c_before = snapshot(lab, "c")
    lab.stop_sshd("c")
    # a and c each get one more subnet: a's change needs a and b, c's needs c and b.
    grown = {"a": ["10.1.0.0/16", "10.11.0.0/16"], "b": SUBNETS["b"], "c": ["10.3.0.0/16", "10.13.0.0/16"]}
    write_config(world, links_yaml(lab, LINKED, subnets=grown))

    result = skyplan("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "Warning:" in result.output and lab.url("c") in result.output, result.output
    assert "cluster.a" in result.output and "cluster.c" in result.output

    started = time.monotonic()
    result = skyplan("apply", "--auto-approve")
    assert time.monotonic() - started < 30
    assert result.exit_code == 1, result.output
    assert lab.url("c") in result.output, result.output
    # a and b got a's change; c, and its change, are untouched.
    assert "10.11.0.0/16" in routes(lab, "b")
    assert reaches(lab, "a", overlay["b"]) and reaches(lab, "b", overlay["a"])
    assert snapshot(lab, "c") == c_before
    recorded = state_resources(skyplan)
    assert recorded["cluster.a"]["subnets"] == grown["a"]
    assert recorded["cluster.c"]["subnets"] == SUBNETS["c"], "a change that failed is recorded as done"

    # Still down: the plan warns, names it, and what is left is c's change only.
    result = skyplan("plan", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    assert "Warning:" in result.output and lab.url("c") in result.output
    assert "cluster.a will be" not in result.output, result.output

    lab.start_sshd("c")
    output = run_ok(skyplan, "apply", "--auto-approve")
    assert "Apply complete!" in output
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    assert state_resources(skyplan)["cluster.c"]["subnets"] == grown["c"]
    assert {"10.11.0.0/16", "10.13.0.0/16"} <= routes(lab, "b")
    assert reaches(lab, "b", overlay["c"]) and reaches(lab, "c", overlay["b"])


def live_address(lab: GatewayLab, gateway: str) -> str:
    """The overlay address on the gateway's interface, as the gateway itself shows it."""
    listed = json.loads(lab.run(gateway, ["ip", "-j", "-4", "address", "show", "dev", INTERFACE]).stdout)
    return listed[0]["addr_info"][0]["local"]


def test_a_gateway_down_on_the_first_apply_holds_up_only_its_own_links(lab: GatewayLab, world: Path, skyplan) -> None:
    lab.stop_sshd("c")
    write_config(world, links_yaml(lab, LINKED))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 1, result.output
    assert lab.url("c") in result.output, result.output
    # c has no key yet, so link b-c cannot be made; a, b and the link between them need nothing of c.
    assert on_gateway(lab, "c", KEY_FILE) is None and not interface_up(lab, "c")
    assert interface_up(lab, "a") and interface_up(lab, "b"), result.output
    a, b = live_address(lab, "a"), live_address(lab, "b")
    assert reaches(lab, "a", b) and reaches(lab, "b", a), "a-b was held up by gateway c being down"

    lab.start_sshd("c")
    assert "Apply complete!" in run_ok(skyplan, "apply", "--auto-approve")
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    overlay = overlay_addresses(skyplan)
    assert (overlay["a"], overlay["b"]) == (a, b)
    assert reaches(lab, "b", overlay["c"]) and reaches(lab, "c", overlay["b"])
    assert reaches(lab, "a", overlay["b"])


# -- 7. skyctl on gateways ------------------------------------------------------------------------


def test_skyctl_create_link_brings_the_peering_up_and_get_link_shows_active(lab: GatewayLab, world: Path, skyplan, skyctl) -> None:
    # The SkyShift way: links.yaml only says how gateways are reached; skyctl registers the rest.
    write_config(world, links_yaml(lab, [], clusters=()).replace("clusters:\n", ""))
    for name in ("a", "b"):
        created = skyctl("create", "cluster", name, "--endpoint", lab.endpoint(name), "--gateway", gateway_of(lab, name))
        assert created.exit_code == 0, created.output
        assert interface_up(lab, name) and on_gateway(lab, name, KEY_FILE), f"skyctl create cluster did not set up gateway {name}"
    overlay = overlay_addresses(skyplan)
    assert not lab.ping("a", overlay["b"], attempts=1), "reachable before any link exists"

    created = skyctl("create", "link", "ab", "-s", "a", "-t", "b")
    assert created.exit_code == 0, created.output
    assert created.output == "+ link.ab\nCreated link ab.\n"
    assert reaches(lab, "a", overlay["b"]) and reaches(lab, "b", overlay["a"]), "skyctl create link did not bring the peering up"

    def status() -> str:
        listed = skyctl("get", "link", "ab")
        assert listed.exit_code == 0, listed.output
        return listed.output.splitlines()[1].split()[3]

    assert wait_for(lambda: status() == "ACTIVE", seconds=20, step=0.5), skyctl("get", "link", "ab", "-o", "json").output
    listing = skyctl("get", "link").output.splitlines()
    assert listing[0].split() == ["NAME", "SOURCE", "TARGET", "STATUS", "AGE"]
    assert listing[1].split()[:4] == ["ab", "a", "b", "ACTIVE"]
    detail = json.loads(skyctl("get", "link", "ab", "-o", "json").output)
    handshake = next(c for c in detail["status"]["conditions"] if c["type"] == "HandshakeObserved")
    assert handshake["status"] == "True", handshake

    deleted = skyctl("delete", "link", "ab")
    assert deleted.exit_code == 0, deleted.output
    assert lab.wg_dump("a").peers == {} and lab.wg_dump("b").peers == {}
    assert not lab.ping("a", overlay["b"], attempts=1), "still reachable after the link was deleted"


# -- 8. SIGKILL in the middle of a gateway apply --------------------------------------------------


def slow_ssh(folder: Path, lab: GatewayLab, seconds: float) -> Path:
    """An `ssh` that waits before every remote command (not before connecting): a wide window to kill in."""
    folder.mkdir()
    wrapper = folder / "ssh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" ControlMaster=no "*) sleep {seconds} ;; esac\n'
        f'exec {lab.bin_dir / "ssh"} "$@"\n'
    )
    wrapper.chmod(0o755)
    return folder


def killed_apply(world: Path, bin_dir: Path, when, *args: str) -> None:
    """`skyplan apply` in a process group of its own, SIGKILLed (all of it) once `when()` holds."""
    scratch = Path(tempfile.mkdtemp(prefix="skk"))  # short: ssh's control sockets live under it
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(scratch), "NO_COLOR": "1"}
    env.pop("SKYPLAN_BACKEND", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "skyplan", "apply", "--auto-approve", *args],
        cwd=world,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        landed = wait_for(lambda: process.poll() is None and when(), seconds=30, step=0.02)
        os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=10)[0].decode(errors="replace")
        assert landed and process.returncode == -signal.SIGKILL, f"the apply was not killed mid-way:\n{output}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # ssh's shared connections run detached from the killed group; end them (by pid) too.
        for pid in _processes_mentioning(str(scratch)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(scratch, ignore_errors=True)


def test_an_apply_killed_mid_way_converges_without_a_second_key(lab: GatewayLab, world: Path, skyplan, tmp_path: Path) -> None:
    slow = slow_ssh(tmp_path / "slow-bin", lab, seconds=1.5)
    write_config(world, links_yaml(lab, LINKED))

    # Killed once every gateway has made its key, before any config is pushed.
    killed_apply(world, slow, lambda: all(on_gateway(lab, g, KEY_FILE) for g in lab.gateways))
    first_keys = {g: on_gateway(lab, g, KEY_FILE) for g in lab.gateways}
    assert any(on_gateway(lab, g, CONF_FILE) is None for g in lab.gateways), "the kill came after the pushes"

    output = run_ok(skyplan, "apply", "--auto-approve")
    assert "Apply complete!" in output, output
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    assert {g: on_gateway(lab, g, KEY_FILE) for g in lab.gateways} == first_keys, "a key was generated twice"
    public = public_keys(skyplan)
    for gateway in lab.gateways:
        assert lab.run(gateway, ["sh", "-c", f"wg pubkey < {KEY_FILE}"]).stdout.strip() == public[gateway]
        assert lab.wg_dump(gateway).public_key == public[gateway]
    overlay = overlay_addresses(skyplan)
    assert reaches(lab, "a", overlay["b"]) and reaches(lab, "c", overlay["b"])

    # A replace killed once b has its new key: the next apply keeps that key, makes no third.
    old_b = first_keys["b"]
    killed_apply(world, slow, lambda: on_gateway(lab, "b", KEY_FILE) not in (None, old_b), "--replace", "cluster.b")
    new_b = on_gateway(lab, "b", KEY_FILE)
    output = run_ok(skyplan, "apply", "--auto-approve")
    assert "Apply complete!" in output, output
    assert "No changes." in run_ok(skyplan, "plan", "--detailed-exitcode")
    assert on_gateway(lab, "b", KEY_FILE) == new_b, "the replaced key was generated twice"
    assert {g: on_gateway(lab, g, KEY_FILE) for g in ("a", "c")} == {g: first_keys[g] for g in ("a", "c")}
    public = public_keys(skyplan)
    assert lab.run("b", ["sh", "-c", f"wg pubkey < {KEY_FILE}"]).stdout.strip() == public["b"]
    assert public["b"] in lab.wg_dump("a").peers and public["b"] in lab.wg_dump("c").peers
    assert reaches(lab, "a", overlay["b"]) and reaches(lab, "b", overlay["c"])
