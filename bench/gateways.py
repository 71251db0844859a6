"""`python -m bench.gateways`: skyplan against SSH gateways in network namespaces, next to Ansible doing the same.

Builds a lab of N gateways (tests/e2e/gateways.py: one network and mount namespace and one sshd
per gateway, needs root, wireguard-go and sshd), then times three runs of each tool as real
processes: the first apply to empty hosts, a run with nothing to change, and the change that adds
one link. Between the tools every gateway is emptied again, so both start from the same hosts.

Who touched what is counted outside both tools: an `ssh` wrapper first on PATH logs every ssh
process (by gateway), each gateway's sshd log gives the logins, and the gateways' own
/etc/wireguard/<interface>.conf (inode and ctime, read through the lab, not over SSH) says whose
config was written. After each run the live interfaces are checked: up, one peer per link, and a
route for every AllowedIPs entry.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import Run, run_process
from bench.run import BIN, load_average, skyplan_env

REPO = Path(__file__).resolve().parents[1]
INTERFACE = "wgsky0"
CONF = f"/etc/wireguard/{INTERFACE}.conf"
ADDRESS_POOL = "100.64.0.0/16"
EXTRA_LINK = "bench-extra"
ANSIBLE_VENV = Path(tempfile.gettempdir()) / "skyplan-bench-cache" / "ansible-core-venv"
RUNS = ("first apply", "no-change run", "one-link change")
COMMANDS = {**{("skyplan", run): "skyplan apply" for run in RUNS}, ("skyplan", RUNS[1]): "skyplan plan",
            **{("ansible", run): "ansible-playbook" for run in RUNS}}
HEADER = ("tool", "run", "command", "runs", "wall s", "min s", "max s", "cpu s", "per gateway ms", "ssh cmds", "logins", "written", "keys here", "check", "skyplan/ansible")


# -- the topology -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topology:
    """Gateways g01..gNN joined in a chain; the change closes the chain into a ring."""

    gateways: list[str]
    links: list[tuple[str, str, str]]
    extra: tuple[str, str, str]

    def with_extra(self, extra: bool) -> list[tuple[str, str, str]]:
        return [*self.links, self.extra] if extra else list(self.links)


def make_topology(count: int) -> Topology:
    if count < 3:
        raise SystemExit("--gateways must be at least 3: the change adds a link between the chain's two ends")
    names = [f"g{i:02d}" for i in range(1, count + 1)]
    links = [(f"l{i:02d}", a, b) for i, (a, b) in enumerate(zip(names, names[1:]), start=1)]
    return Topology(names, links, (EXTRA_LINK, names[0], names[-1]))


def links_yaml(lab, topology: Topology, *, extra: bool, live: bool, parallelism: int) -> str:
    """The workspace: with `live`, every cluster is a gateway reached through the lab's ssh config;
    without it, the same clusters in local mode (files under wireguard/, keys on this machine)."""
    lines = ["version: 1", "provider:", "  name: wireguard", f"  interface: {INTERFACE}", f"  address_pool: {ADDRESS_POOL}",
             "  listen_port: 51820", "  persistent_keepalive: 25"]
    if live:
        lines += ["  ssh:", f"    config: {lab.ssh_config}", f"    parallelism: {parallelism}", "    timeout: 30s"]
    lines.append("clusters:")
    for i, name in enumerate(topology.gateways, start=1):
        lines += [f"  - name: {name}", f"    endpoint: {lab.endpoint(name)}", f"    subnets: [10.0.{i}.0/24]"]
        if live:
            lines.append(f"    gateway: {name}")
    lines.append("links:")
    for name, source, target in topology.with_extra(extra):
        lines += [f"  - name: {name}", f"    source: {source}", f"    target: {target}"]
    return "\n".join(lines) + "\n"


# -- counting, from outside both tools ---------------------------------------------------------------


class SshCounter:
    """An `ssh` wrapper that logs one line per ssh process ("KIND GATEWAY"), then runs the lab's ssh.

    KIND is `control` for `ssh -O ...` (asks a local master, reaches no gateway), `master` for a
    shared connection started with -N, `session` for anything else (a command, or sftp's channel).
    The gateway is the first argument that is one of the lab's Host aliases.
    """

    def __init__(self, folder: Path, lab, gateways: list[str]) -> None:
        self.bin_dir = folder / "counting-bin"
        self.log = folder / "ssh-processes.log"
        self.bin_dir.mkdir(parents=True)
        self.log.touch()
        aliases = "|".join(gateways)
        wrapper = self.bin_dir / "ssh"
        wrapper.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            # Logs this ssh process, then runs the lab's ssh (inside the controller's namespace).
            kind=session gateway=none
            for arg in "$@"; do
                case "$arg" in
                    -O) kind=control ;;
                    -N) [ "$kind" = session ] && kind=master ;;
                    {aliases}) gateway=$arg; break ;;
                esac
            done
            echo "$kind $gateway" >> {self.log}
            exec {lab.bin_dir / 'ssh'} "$@"
            """))
        wrapper.chmod(0o755)

    def snapshot(self) -> Counter:
        return Counter(tuple(line.split()) for line in self.log.read_text().splitlines() if line.strip())


def sshd_logins(lab) -> Counter:
    """Accepted logins per gateway so far, from each sshd's own log."""
    return Counter({g: (lab.workdir / g / "sshd.log").read_text(errors="replace").count("Accepted publickey") for g in lab.gateways})


@dataclass(frozen=True)
class GatewayView:
    """What one gateway looks like from inside its namespaces (read through the lab, not SSH)."""

    conf_id: str | None  # inode and ctime of the config: a rewrite (atomic rename) changes it
    up: bool
    allowed: tuple[str, ...]  # every AllowedIPs entry of every live peer
    peers: int
    routes: tuple[str, ...]  # destinations routed via the interface


INSPECT = f"""
stat -c '%i %z' {CONF} 2>/dev/null || echo none
echo ---
ip link show dev {INTERFACE} >/dev/null 2>&1 && echo up || echo down
echo ---
wg show {INTERFACE} allowed-ips 2>/dev/null
echo ---
ip -o route show dev {INTERFACE} 2>/dev/null; ip -o -6 route show dev {INTERFACE} 2>/dev/null
true
"""


def view(lab, gateway: str) -> GatewayView:
    out = lab.run(gateway, ["sh", "-c", INSPECT]).stdout
    conf, up, allowed, routes = (part.strip() for part in out.split("---\n"))
    peers = [line.split() for line in allowed.splitlines() if line.strip()]
    return GatewayView(
        conf_id=None if conf == "none" else conf,
        up=up == "up",
        allowed=tuple(cidr for peer in peers for cidr in peer[1:] if cidr != "(none)"),
        peers=len(peers),
        routes=tuple(line.split()[0] for line in routes.splitlines() if line.strip()),
    )


def views(lab) -> dict[str, GatewayView]:
    return {g: view(lab, g) for g in lab.gateways}


def check_gateways(after: dict[str, GatewayView], topology: Topology, extra: bool) -> str:
    """'ok', or what is wrong with the live interfaces: down, peers missing, routes missing."""
    degree = Counter()
    for _, a, b in topology.with_extra(extra):
        degree[a] += 1
        degree[b] += 1
    problems = []
    down = [g for g, v in after.items() if not v.up]
    if down:
        problems.append(f"down: {','.join(down)}")
    wrong = [f"{g} {v.peers}/{degree[g]}" for g, v in after.items() if v.up and v.peers != degree[g]]
    if wrong:
        problems.append(f"peers: {','.join(wrong)}")
    unrouted = {}
    for g, v in after.items():
        routes = [ipaddress.ip_network(r, strict=False) for r in v.routes if r != "default"]
        missing = [c for c in v.allowed if not any(_covers(r, ipaddress.ip_network(c, strict=False)) for r in routes)]
        if missing:
            unrouted[g] = len(missing)
    if unrouted:
        problems.append("no route: " + ",".join(f"{g} {n}" for g, n in unrouted.items()))
    return "ok" if not problems else "; ".join(problems)


def _covers(route, cidr) -> bool:
    return route.version == cidr.version and cidr.subnet_of(route)


KEYS = f"cat /etc/wireguard/{INTERFACE}.key 2>/dev/null; sed -n 's/^PrivateKey *= *//p' {CONF} 2>/dev/null; true"


def keys_on_controller(lab, folder: Path) -> int:
    """How many gateways' private keys (read on each gateway) appear in some file under `folder`."""
    keys = {}
    for g in lab.gateways:
        found = lab.run(g, ["sh", "-c", KEYS]).stdout.split()
        if found:
            keys[g] = {key.encode() for key in found}
    seen = set()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            seen.update(g for g, candidates in keys.items() if any(key in data for key in candidates))
    return len(seen)


def reset_gateways(lab) -> None:
    """Every gateway back to empty: interface down, config and key removed (untimed)."""
    for g in lab.gateways:
        lab.run(g, ["sh", "-c", f"wg-quick down {INTERFACE} >/dev/null 2>&1; ip link del {INTERFACE} 2>/dev/null; rm -f /etc/wireguard/*"], check=False)


# -- one timed run -------------------------------------------------------------------------------------


@dataclass
class Result:
    tool: str
    run: str
    gateways: int
    command: str = ""
    process: Run | None = None
    problem: str | None = None
    ssh: Counter = field(default_factory=Counter)  # (kind, gateway) -> ssh processes
    logins: Counter = field(default_factory=Counter)  # gateway -> accepted logins
    written: list[str] = field(default_factory=list)
    keys_here: int | None = None  # gateways whose private key is in a file on the controller
    check: str = ""

    def sessions_per_gateway(self) -> Counter:
        """Remote commands (and file transfers) per gateway; masters and -O queries run none."""
        return Counter({g: n for (kind, g), n in self.ssh.items() if kind == "session" and g != "none"})


class Harness:
    """Times runs against one lab and keeps every Result."""

    def __init__(self, lab, topology: Topology, counter: SshCounter, timeout: float) -> None:
        self.lab = lab
        self.topology = topology
        self.counter = counter
        self.timeout = timeout
        self.results: list[Result] = []

    def timed(self, tool: str, name: str, argv: list[str], cwd: Path, env: dict[str, str], *, extra: bool, check) -> Result:
        """Run `argv` once; count ssh processes, logins and config writes; check the live interfaces.

        The run is also checked against the configs it should have written: every gateway's on
        the first apply, none on a run with nothing to change, the new link's two ends on the change.
        """
        result = Result(tool, name, len(self.topology.gateways), command=describe(argv))
        self.results.append(result)
        before, ssh_before, logins_before = views(self.lab), self.counter.snapshot(), sshd_logins(self.lab)
        run = run_process(argv, cwd, env, self.timeout)
        result.process = run
        after = views(self.lab)
        result.ssh = self.counter.snapshot() - ssh_before
        result.logins = sshd_logins(self.lab) - logins_before
        result.written = [g for g in self.topology.gateways if after[g].conf_id != before[g].conf_id]
        result.check = check_gateways(after, self.topology, extra)
        result.keys_here = keys_on_controller(self.lab, cwd.parent)
        (cwd / f"{tool}-{name.replace(' ', '-')}.log").write_text(run.output)
        if run.timed_out:
            result.problem = f"capped after {self.timeout:g} s"
        elif run.exit_code != 0:
            result.problem = f"exit {run.exit_code}: {last_line(run.output)}"
        else:
            result.problem = check(run) or self.wrote_what_it_should(name, result.written)
        sessions = result.sessions_per_gateway()
        progress(f"  {tool} {name}: {run.seconds:.2f} s, {sum(sessions.values())} ssh commands, "
                 f"{sum(result.logins.values())} logins, written on {len(result.written)}: {','.join(result.written) or '-'}; "
                 f"check {result.check}" + (f" -- {result.problem}" if result.problem else ""))
        return result

    def wrote_what_it_should(self, name: str, written: list[str]) -> str | None:
        expected = {RUNS[0]: self.topology.gateways, RUNS[1]: [], RUNS[2]: list(self.topology.extra[1:])}[name]
        if sorted(written) == sorted(expected):
            return None
        return f"config written on {','.join(written) or 'none'}, expected on {','.join(expected) or 'none'}"


def describe(argv: list[str]) -> str:
    """`skyplan apply`, `skyplan plan`, `ansible-playbook`: the program and its subcommand, if any."""
    words = [Path(argv[0]).name, *argv[1:2]]
    return " ".join(w for w in words if not w.startswith("-") and w != "--auto-approve")


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- skyplan ----------------------------------------------------------------------------------------------


def run_skyplan(h: Harness, folder: Path, parallelism: int) -> None:
    ws = folder / "skyplan"
    ws.mkdir()
    env = skyplan_env()
    env["PATH"] = f"{h.counter.bin_dir}{os.pathsep}{env['PATH']}"
    env.pop("SSH_AUTH_SOCK", None)  # the user's agent plays no part
    skyplan = str(BIN / "skyplan")
    write = lambda extra: (ws / "links.yaml").write_text(links_yaml(h.lab, h.topology, extra=extra, live=True, parallelism=parallelism))  # noqa: E731

    write(False)
    # Untimed: compiles skyplan's bytecode, gateway modules included, so no timed run pays for it.
    run_process([skyplan, "validate"], ws, env, h.timeout)
    resources = len(h.topology.gateways) + len(h.topology.links)
    first = h.timed("skyplan", RUNS[0], [skyplan, "apply", "--auto-approve"], ws, env, extra=False,
                    check=lambda run: None if f"Apply complete! Resources: {resources} added" in run.output else "apply did not add everything")
    if first.problem:
        skip(h, "skyplan", RUNS[1:], "skipped: the first apply failed")
        return
    h.timed("skyplan", RUNS[1], [skyplan, "plan"], ws, env, extra=False,
            check=lambda run: None if "No changes." in run.output else "plan found changes")
    write(True)
    h.timed("skyplan", RUNS[2], [skyplan, "apply", "--auto-approve"], ws, env, extra=True,
            check=lambda run: None if "Resources: 1 added" in run.output else "apply did not add exactly the link")


def skip(h: Harness, tool: str, runs: tuple[str, ...], problem: str) -> None:
    for name in runs:
        h.results.append(Result(tool, name, len(h.topology.gateways), command=COMMANDS[tool, name], problem=problem))


# -- Ansible ----------------------------------------------------------------------------------------------

PLAYBOOK = """\
# The wg-quick configs were rendered on this machine (private keys included) by skyplan's local
# mode; Ansible templates them onto the gateways and reloads the interface when the file changed.
- hosts: gateways
  gather_facts: false
  tasks:
    - name: wg-quick config
      ansible.builtin.template:
        src: "{{ render_dir }}/{{ inventory_hostname }}/{{ wg_iface }}.conf"
        dest: "/etc/wireguard/{{ wg_iface }}.conf"
        owner: root
        mode: "0600"
      notify: reload wireguard
    - name: interface up
      ansible.builtin.shell: "ip link show dev {{ wg_iface }} >/dev/null 2>&1 && echo up || { wg-quick up {{ wg_iface }} </dev/null >/dev/null 2>&1 && echo started; }"
      register: wg_up
      changed_when: "'started' in wg_up.stdout"
  handlers:
    - name: reload wireguard
      ansible.builtin.shell: "wg syncconf {{ wg_iface }} <(wg-quick strip {{ wg_iface }})"
      args:
        executable: /bin/bash
"""


def ansible_ready(venv: Path) -> str | None:
    """Install ansible-core from PyPI into a venv of its own, once; the problem if it does not install."""
    if (venv / "bin" / "ansible-playbook").exists():
        return None
    progress(f"installing ansible-core into {venv} ...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    for argv in ([sys.executable, "-m", "venv", str(venv)], [str(venv / "bin" / "pip"), "install", "-q", "ansible-core"]):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            return f"ansible-core did not install: {last_line(done.stderr or done.stdout)}"
    return None


def ansible_version(venv: Path) -> str:
    done = subprocess.run([str(venv / "bin" / "ansible-playbook"), "--version"], capture_output=True, text=True)
    match = re.search(r"core ([\d.]+)", done.stdout)
    return match.group(1) if match else "?"


def write_ansible_workspace(ws: Path, h: Harness, render_dir: Path, forks: int) -> dict[str, str]:
    hosts = "".join(f"{g} ansible_host={g}\n" for g in h.topology.gateways)
    (ws / "inventory.ini").write_text(
        f"[gateways]\n{hosts}\n[gateways:vars]\n"
        "ansible_user=root\n"
        f"ansible_ssh_common_args='-F {h.lab.ssh_config}'\n"
        # sftp starts its own ssh; -S makes it the same wrapper, so it is counted and in the lab.
        f"ansible_sftp_extra_args='-S {h.counter.bin_dir / 'ssh'}'\n"
        "ansible_python_interpreter=/usr/bin/python3\n"
        f"wg_iface={INTERFACE}\n"
        f"render_dir={render_dir}\n"
    )
    (ws / "playbook.yml").write_text(PLAYBOOK)
    (ws / "ansible.cfg").write_text(
        "[defaults]\n"
        f"forks = {forks}\n"
        f"local_tmp = {ws / 'tmp-local'}\n"
        f"remote_tmp = {ws / 'tmp-remote'}\n"  # the gateways share this machine's file system
        "retry_files_enabled = false\n"
        "interpreter_python = /usr/bin/python3\n"
        "[ssh_connection]\n"
        "pipelining = true\n"
        f"control_path_dir = {ws / 'cp'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "SSH_AUTH_SOCK"}
    env.update(
        PATH=f"{h.counter.bin_dir}{os.pathsep}{env['PATH']}",
        ANSIBLE_CONFIG=str(ws / "ansible.cfg"),
        ANSIBLE_HOME=str(ws / "home"),
        ANSIBLE_NOCOLOR="1",
        NO_COLOR="1",
    )
    return env


def close_ansible_masters(ws: Path) -> None:
    """End the shared connections Ansible leaves behind (ControlPersist), so every run starts cold, as skyplan's do."""
    for socket in (ws / "cp").glob("*"):
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "gateway"], capture_output=True, timeout=10)


def recap(output: str) -> dict[str, int]:
    """changed= per host from the PLAY RECAP."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)}


def run_ansible(h: Harness, folder: Path, venv: Path, forks: int) -> None:
    ws = folder / "ansible"
    render = folder / "render"
    ws.mkdir()
    render.mkdir()
    playbook = [str(venv / "bin" / "ansible-playbook"), "-i", "inventory.ini", "playbook.yml"]
    env = write_ansible_workspace(ws, h, render / "wireguard", forks)
    local_env = skyplan_env()

    def rendered(extra: bool) -> None:
        (render / "links.yaml").write_text(links_yaml(h.lab, h.topology, extra=extra, live=False, parallelism=forks))
        run = run_process([str(BIN / "skyplan"), "apply", "--auto-approve"], render, local_env, h.timeout)
        if run.exit_code != 0:
            raise SystemExit(f"skyplan could not render the configs for Ansible: {last_line(run.output)}")
        progress(f"  (configs for Ansible rendered by skyplan's local mode in {run.seconds:.2f} s, untimed)")

    def changed_on(expected: set[str] | None):
        def check(run: Run) -> str | None:
            changed = {host for host, n in recap(run.output).items() if n}
            if expected is None:
                return None if len(recap(run.output)) == len(h.topology.gateways) else "recap does not name every gateway"
            return None if changed == expected else f"changed on {sorted(changed) or 'none'}, not {sorted(expected)}"
        return check

    rendered(False)
    first = h.timed("ansible", RUNS[0], playbook, ws, env, extra=False, check=changed_on(None))
    close_ansible_masters(ws)
    if first.problem:
        skip(h, "ansible", RUNS[1:], "skipped: the first run failed")
        return
    h.timed("ansible", RUNS[1], playbook, ws, env, extra=False, check=changed_on(set()))
    close_ansible_masters(ws)
    rendered(True)
    _, a, b = h.topology.extra
    h.timed("ansible", RUNS[2], playbook, ws, env, extra=True, check=changed_on({a, b}))
    close_ansible_masters(ws)


# -- the report ---------------------------------------------------------------------------------------------


def group(results: list[Result]) -> dict[tuple[str, str], list[Result]]:
    """Results by (tool, run), in the order first seen."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.tool, r.run), []).append(r)
    return groups


def render_table(results: list[Result]) -> str:
    groups = group(results)

    def median(tool: str, run: str) -> float | None:
        done = [r.process.seconds for r in groups.get((tool, run), []) if r.process and not r.problem]
        failed = any(r.problem for r in groups.get((tool, run), []))
        return statistics.median(done) if done and not failed else None

    rows = [HEADER]
    for (tool, run), rs in groups.items():
        problem = next((r.problem for r in rs if r.problem), None)
        timed = [r.process for r in rs if r.process and not r.problem] or [r.process for r in rs if r.process]
        last = rs[-1]
        sessions = last.sessions_per_gateway()
        ours, theirs = median("skyplan", run), median("ansible", run)
        ratio = f"{ours / theirs:.2f}x" if tool == "skyplan" and ours and theirs else ""
        numbers = ("",) * 10
        if timed:
            wall = statistics.median(p.seconds for p in timed)
            numbers = (
                str(len(timed)), f"{wall:.2f}", f"{min(p.seconds for p in timed):.2f}", f"{max(p.seconds for p in timed):.2f}",
                f"{statistics.median(p.cpu_seconds for p in timed):.2f}", f"{wall * 1000 / last.gateways:.0f}",
                f"{sum(sessions.values())} on {len(sessions)}", f"{sum(last.logins.values())}", f"{len(last.written)}", f"{last.keys_here}/{last.gateways}",
            )  # fmt: skip
        rows.append((tool, run, last.command, *numbers, problem or last.check, ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = set(range(3, 13)) | {14}

    def line(row) -> str:
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)).rstrip()

    return "\n".join([line(HEADER), "  ".join("-" * w for w in widths), *(line(row) for row in rows[1:])]) + "\n"


def render_touched(results: list[Result], topology: Topology) -> str:
    lines = []
    for (_, run), rs in group(results).items():
        r = rs[-1]
        if run != RUNS[2] or r.process is None:
            continue
        sessions = r.sessions_per_gateway()
        spread = Counter(sessions[g] for g in topology.gateways)
        logins = Counter(r.logins[g] for g in topology.gateways)
        lines.append(
            f"  {r.tool}: config written on {', '.join(r.written) or 'none'}; ssh commands per gateway: "
            + ", ".join(f"{n} on {count}" for n, count in sorted(spread.items()))
            + " (most: " + ", ".join(f"{g} {sessions[g]}" for g in sorted(topology.gateways, key=lambda g: -sessions[g])[:2])
            + "); logins per gateway: " + ", ".join(f"{n} on {count}" for n, count in sorted(logins.items()))
        )
    return ("One-link change (" + " - ".join(topology.extra[1:]) + "):\n" + "\n".join(lines) + "\n") if lines else ""


NOTES = """\
runs: rounds timed, each from empty gateways; wall s: median of spawn to exit of the one process (skyplan, or ansible-playbook),
  start-up included; per gateway ms = median wall / gateways
cpu s: user+system of that process and the children it waited for (ssh commands; not daemonised ssh masters)
ssh cmds: ssh processes that ran a remote command or a file transfer, logged by a counting `ssh` wrapper first on PATH
  ("N on G": on G distinct gateways); a shared connection's master (-N) and -O control queries are not counted
logins: accepted SSH logins (new connections), from each gateway's sshd log
written: gateways whose /etc/wireguard/{iface}.conf was rewritten (inode/ctime, read inside each gateway's namespace)
keys here: gateways whose private key (read on the gateway) is in some file of the run's workspaces on this machine
ssh cmds, logins, written and keys here are those of the last round
check: after the run, on every gateway: interface up, one peer per link, a route via the interface for every AllowedIPs entry
Ansible: ansible-core {ansible}, forks = ssh.parallelism, pipelining on, gather_facts off, ControlPersist (default) within a run,
  masters closed between runs; its configs are rendered first by skyplan's local mode, untimed, so the private keys are made
  on this machine and shipped to the gateways; skyplan's are generated on each gateway and never leave it.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gateways", description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=20, help="gateways in the lab (default 20; at least 3)")
    parser.add_argument("--parallelism", type=int, default=10, help="skyplan's ssh.parallelism and Ansible's forks (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all runs, each from empty gateways; the table shows the median (default 1)")
    parser.add_argument("--no-ansible", action="store_true", help="time skyplan only")
    parser.add_argument("--ansible-venv", type=Path, default=ANSIBLE_VENV, help=f"venv for ansible-core, made on first use (default {ANSIBLE_VENV})")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before one run is killed (default 300)")
    parser.add_argument("--workdir", type=Path, help="keep the lab's files, workspaces and each run's output here (default: a temporary folder, removed after)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tests.e2e.gateways import GatewayLab, missing_gateway_prerequisites

    missing = missing_gateway_prerequisites()
    if missing:
        print("the gateway bench needs, and this machine lacks:\n  - " + "\n  - ".join(missing), file=sys.stderr)
        return 1
    if not (BIN / "skyplan").exists():
        print(f"no skyplan console script next to {sys.executable}: run this with the project's venv python", file=sys.stderr)
        return 1
    topology = make_topology(args.gateways)
    ansible_problem = "not run (--no-ansible)" if args.no_ansible else ansible_ready(args.ansible_venv)
    if ansible_problem and not args.no_ansible:
        print(ansible_problem, file=sys.stderr)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="skyplan-bench-gw-"))
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{args.gateways}-gateways"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    load_at_start = load_average()
    lab = GatewayLab(topology.gateways, folder / "lab")
    try:
        started = time.perf_counter()
        lab.start()
        progress(f"== lab of {args.gateways} gateways up in {time.perf_counter() - started:.1f} s")
        h = Harness(lab, topology, SshCounter(folder, lab, topology.gateways), args.timeout)
        for i in range(args.repeat):
            # Each round starts from empty gateways and fresh workspaces, so every run does the same work.
            cycle = folder / f"round{i + 1}"
            cycle.mkdir()
            if args.repeat > 1:
                progress(f"== round {i + 1}/{args.repeat}")
            run_skyplan(h, cycle, args.parallelism)
            reset_gateways(lab)
            if ansible_problem:
                skip(h, "ansible", RUNS, ansible_problem)
            else:
                run_ansible(h, cycle, args.ansible_venv, args.parallelism)
                reset_gateways(lab)
    finally:
        lab.close()
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    from importlib.metadata import version

    print()
    print(f"skyplan {version('skyplan')}, {args.gateways} gateways in a chain of {len(topology.links)} links, "
          f"ssh.parallelism {args.parallelism}, {os.cpu_count()} CPUs; load average at start {load_at_start}, at end {load_average()}")
    print(NOTES.format(iface=INTERFACE, ansible="not used" if ansible_problem else ansible_version(args.ansible_venv)))
    print(render_table(h.results))
    print(render_touched(h.results, topology))
    return 0


if __name__ == "__main__":
    sys.exit(main())
