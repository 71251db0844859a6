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
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench import ansible
from bench.measure import Run, run_process
from bench.observe import INTERFACE, SshCounter, check_gateways, gateway_cpu_seconds, keys_on_controller, reset_gateways, sshd_logins, views
from bench.run import BIN, load_average, skyplan_env

ADDRESS_POOL = "100.64.0.0/16"
EXTRA_LINK = "bench-extra"
RUNS = ("first apply", "no-change run", "one-link change")
KEEP = 60  # seconds of provider.ssh.keep_connections in the rounds that time it (--keep-connections)
COMMANDS = {**{("skyplan", run): "skyplan apply" for run in RUNS}, ("skyplan", RUNS[1]): "skyplan plan",
            **{("ansible", run): "ansible-playbook" for run in RUNS}}
HEADER = ("tool", "run", "command", "runs", "wall s", "min s", "max s", "cpu s", "gw cpu s", "per gateway ms", "ssh cmds", "logins", "written", "keys here", "check", "skyplan/ansible")


# -- the topology -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topology:
    """Gateways g01..gNN joined in a chain; the change closes the chain into a ring."""

    gateways: list[str]
    links: list[tuple[str, str, str]]
    extra: tuple[str, str, str]

    def with_extra(self, extra: bool) -> list[tuple[str, str, str]]:
        return [*self.links, self.extra] if extra else list(self.links)

    def degree(self, extra: bool) -> Counter:
        """Links per gateway."""
        return Counter(end for _, a, b in self.with_extra(extra) for end in (a, b))


def make_topology(count: int) -> Topology:
    if count < 3:
        raise SystemExit("--gateways must be at least 3: the change adds a link between the chain's two ends")
    names = [f"g{i:02d}" for i in range(1, count + 1)]
    links = [(f"l{i:02d}", a, b) for i, (a, b) in enumerate(zip(names, names[1:]), start=1)]
    return Topology(names, links, (EXTRA_LINK, names[0], names[-1]))


def links_yaml(lab, topology: Topology, *, extra: bool, live: bool, parallelism: int, keep: float = 0) -> str:
    """The workspace: with `live`, every cluster is a gateway reached through the lab's ssh config
    (with `keep`, provider.ssh.keep_connections); without it, the same clusters in local mode
    (files under wireguard/, keys on this machine)."""
    lines = ["version: 1", "provider:", "  name: wireguard", f"  interface: {INTERFACE}", f"  address_pool: {ADDRESS_POOL}",
             "  listen_port: 51820", "  persistent_keepalive: 25"]
    if live:
        lines += ["  ssh:", f"    config: {lab.ssh_config}", f"    parallelism: {parallelism}", "    timeout: 30s"]
        if keep:
            lines.append(f"    keep_connections: {keep:g}s")
    lines.append("clusters:")
    for i, name in enumerate(topology.gateways, start=1):
        lines += [f"  - name: {name}", f"    endpoint: {lab.endpoint(name)}", f"    subnets: [10.0.{i}.0/24]"]
        if live:
            lines.append(f"    gateway: {name}")
    lines.append("links:")
    for name, source, target in topology.with_extra(extra):
        lines += [f"  - name: {name}", f"    source: {source}", f"    target: {target}"]
    return "\n".join(lines) + "\n"


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
    gateway_cpu: float | None = None  # CPU seconds the gateways' sshds spent on the run's connections

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
        cpu_before = gateway_cpu_seconds(self.lab)
        run = run_process(argv, cwd, env, self.timeout)
        result.process = run
        time.sleep(0.3)  # the sshds reap the run's last connections
        result.gateway_cpu = gateway_cpu_seconds(self.lab) - cpu_before
        after = views(self.lab)
        result.ssh = self.counter.snapshot() - ssh_before
        result.logins = sshd_logins(self.lab) - logins_before
        result.written = [g for g in self.topology.gateways if after[g].conf_id != before[g].conf_id]
        result.check = check_gateways(after, self.topology.degree(extra))
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
    return " ".join(w for w in words if not w.startswith("-"))


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- skyplan ----------------------------------------------------------------------------------------------


def kept_tool(keep: float) -> str:
    """The tool column of the runs with provider.ssh.keep_connections."""
    return f"skyplan keep_connections={keep:g}s"


def run_skyplan(h: Harness, folder: Path, parallelism: int, keep: float = 0) -> None:
    """skyplan's three runs; with `keep`, with provider.ssh.keep_connections: its first apply
    still logs in to every gateway and leaves the connections for the two runs after it."""
    tool = kept_tool(keep) if keep else "skyplan"
    ws = folder / ("skyplan-keep" if keep else "skyplan")
    ws.mkdir()
    env = skyplan_env()
    env["PATH"] = f"{h.counter.bin_dir}{os.pathsep}{env['PATH']}"
    env.pop("SSH_AUTH_SOCK", None)  # the user's agent plays no part
    runtime = None
    if keep:
        # The kept sockets in a folder of this bench's own (short: a socket path has ~107 bytes),
        # never among the user's own kept connections; ended, and removed, after the runs.
        runtime = Path(tempfile.mkdtemp(prefix="sp-bench-"))
        env["XDG_RUNTIME_DIR"] = str(runtime)
    skyplan = str(BIN / "skyplan")
    write = lambda extra: (ws / "links.yaml").write_text(links_yaml(h.lab, h.topology, extra=extra, live=True, parallelism=parallelism, keep=keep))  # noqa: E731

    try:
        write(False)
        # Untimed: compiles skyplan's bytecode, gateway modules included, so no timed run pays for it.
        run_process([skyplan, "validate"], ws, env, h.timeout)
        resources = len(h.topology.gateways) + len(h.topology.links)
        first = h.timed(tool, RUNS[0], [skyplan, "apply", "--auto-approve"], ws, env, extra=False,
                        check=lambda run: None if f"Apply complete! Resources: {resources} added" in run.output else "apply did not add everything")
        if first.problem:
            skip(h, tool, RUNS[1:], "skipped: the first apply failed")
            return
        h.timed(tool, RUNS[1], [skyplan, "plan"], ws, env, extra=False,
                check=lambda run: None if "No changes." in run.output else "plan found changes")
        write(True)
        h.timed(tool, RUNS[2], [skyplan, "apply", "--auto-approve"], ws, env, extra=True,
                check=lambda run: None if "Resources: 1 added" in run.output else "apply did not add exactly the link")
    finally:
        if runtime is not None:
            end_kept(runtime)


def end_kept(runtime: Path) -> int:
    """End the masters the kept runs left (skyplan_wireguard.ssh.end_kept, for their runtime folder)."""
    from skyplan_wireguard import ssh

    saved = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        return ssh.end_kept()
    finally:
        if saved is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = saved
        shutil.rmtree(runtime, ignore_errors=True)


def skip(h: Harness, tool: str, runs: tuple[str, ...], problem: str) -> None:
    for name in runs:
        command = COMMANDS.get((tool, name)) or COMMANDS["skyplan", name]  # the kept runs are skyplan's commands
        h.results.append(Result(tool, name, len(h.topology.gateways), command=command, problem=problem))


def run_ansible(h: Harness, folder: Path, venv: Path, forks: int) -> None:
    ws = folder / "ansible"
    render = folder / "render"
    ws.mkdir()
    render.mkdir()
    playbook = [str(venv / "bin" / "ansible-playbook"), "-i", "inventory.ini", "playbook.yml"]
    # Ansible's remote temporary files are on the gateways, which share this machine's file
    # system: kept with the lab, away from the workspaces that `keys here` searches.
    env = ansible.write_workspace(ws, h.topology.gateways, h.lab.ssh_config, h.counter.bin_dir / "ssh", render / "wireguard", forks,
                                  remote_tmp=h.lab.workdir / "ansible-remote-tmp")
    local_env = skyplan_env()

    def rendered(extra: bool) -> None:
        (render / "links.yaml").write_text(links_yaml(h.lab, h.topology, extra=extra, live=False, parallelism=forks))
        run = run_process([str(BIN / "skyplan"), "apply", "--auto-approve"], render, local_env, h.timeout)
        if run.exit_code != 0:
            raise SystemExit(f"skyplan could not render the configs for Ansible: {last_line(run.output)}")
        progress(f"  (configs for Ansible rendered by skyplan's local mode in {run.seconds:.2f} s, untimed)")

    def changed_on(expected: set[str] | None):
        def check(run: Run) -> str | None:
            changed = {host for host, n in ansible.recap(run.output).items() if n}
            if expected is None:
                return None if len(ansible.recap(run.output)) == len(h.topology.gateways) else "recap does not name every gateway"
            return None if changed == expected else f"changed on {sorted(changed) or 'none'}, not {sorted(expected)}"
        return check

    rendered(False)
    first = h.timed("ansible", RUNS[0], playbook, ws, env, extra=False, check=changed_on(None))
    ansible.close_masters(ws)
    if first.problem:
        skip(h, "ansible", RUNS[1:], "skipped: the first run failed")
        return
    h.timed("ansible", RUNS[1], playbook, ws, env, extra=False, check=changed_on(set()))
    ansible.close_masters(ws)
    rendered(True)
    _, a, b = h.topology.extra
    h.timed("ansible", RUNS[2], playbook, ws, env, extra=True, check=changed_on({a, b}))
    ansible.close_masters(ws)


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
        numbers = ("",) * 11
        if timed:
            wall = statistics.median(p.seconds for p in timed)
            gateway_cpu = [r.gateway_cpu for r in rs if r.process and r.gateway_cpu is not None]
            numbers = (
                str(len(timed)), f"{wall:.2f}", f"{min(p.seconds for p in timed):.2f}", f"{max(p.seconds for p in timed):.2f}",
                f"{statistics.median(p.cpu_seconds for p in timed):.2f}",
                f"{statistics.median(gateway_cpu):.2f}" if gateway_cpu else "", f"{wall * 1000 / last.gateways:.0f}",
                f"{sum(sessions.values())} on {len(sessions)}", f"{sum(last.logins.values())}", f"{len(last.written)}", f"{last.keys_here}/{last.gateways}",
            )  # fmt: skip
        rows.append((tool, run, last.command, *numbers, problem or last.check, ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = set(range(3, 14)) | {15}

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


ANSIBLE_NOTE = """\
Ansible: ansible-core {ansible}, forks = ssh.parallelism, pipelining on, gather_facts off, ControlPersist (default) within a run,
  masters closed between runs; its configs are rendered first by skyplan's local mode, untimed, so the private keys are made
  on this machine and shipped to the gateways; skyplan's are generated on each gateway and never leave it.
"""
NOTES = """\
runs: rounds timed, each from empty gateways; wall s: median of spawn to exit of the one process (skyplan, or ansible-playbook),
  start-up included; per gateway ms = median wall / gateways
cpu s: user+system of that process and the children it waited for (ssh commands; not daemonised ssh masters)
gw cpu s: user+system the gateways' sshds spent on the run (each login's sshd, the sessions and what they ran), median;
  all gateways share this machine's CPUs with the tool, so wall s can be no less than (cpu s + gw cpu s) / CPUs
ssh cmds: ssh processes that ran a remote command or a file transfer, logged by a counting `ssh` wrapper first on PATH
  ("N on G": on G distinct gateways); a shared connection's master (-N), -O control queries and ssh -G (reads the ssh
  config, reaches no gateway; one per gateway and run with keep_connections) are not counted
logins: accepted SSH logins (new connections), from each gateway's sshd log
written: gateways whose /etc/wireguard/{iface}.conf was rewritten (inode/ctime, read inside each gateway's namespace)
keys here: gateways whose private key (read on the gateway) is in some file of the run's workspaces on this machine
ssh cmds, logins, written and keys here are those of the last round
check: after the run, on every gateway: interface up, one peer per link, a route via the interface for every AllowedIPs entry
skyplan keep_connections=Ns: the same three runs with provider.ssh.keep_connections: Ns, in a workspace of their own from empty
  gateways; its first apply logs in to every gateway, as the default does, and leaves the connections running (their sockets
  in a private folder of the bench's); the two runs after it reuse them (logins 0); they are ended after the third run.
  cpu s leaves out the kept masters' own CPU (daemonised); gw cpu s counts the kept connections' sshds too
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gateways", description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=20, help="gateways in the lab (default 20; at least 3)")
    parser.add_argument("--parallelism", type=int, default=10, help="skyplan's ssh.parallelism and Ansible's forks (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all runs, each from empty gateways; the table shows the median (default 1)")
    parser.add_argument("--no-ansible", action="store_true", help="time skyplan only")
    parser.add_argument("--keep-connections", type=float, default=KEEP, metavar="SECONDS",
                        help=f"also time skyplan's runs with provider.ssh.keep_connections set to this (default {KEEP}; 0: not)")
    parser.add_argument("--ansible-venv", type=Path, default=ansible.DEFAULT_VENV, help=f"venv for ansible-core, made on first use (default {ansible.DEFAULT_VENV})")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before one run is killed (default 300)")
    parser.add_argument("--workdir", type=Path, help="keep the lab's files, workspaces and each run's output here (default: a temporary folder, removed after)")
    parser.add_argument("--kex", metavar="ALGORITHMS",
                        help="KexAlgorithms for the lab's ssh config, as a user could set it in theirs (default: OpenSSH's own, "
                             "post-quantum sntrup761x25519 first on OpenSSH 9.x; e.g. curve25519-sha256 to see what that costs)")
    return parser.parse_args(argv)


def ssh_version() -> str:
    import subprocess

    done = subprocess.run(["ssh", "-V"], capture_output=True, text=True)
    return (done.stderr or done.stdout).strip().split(",")[0] or "ssh (version unknown)"


def bench_lab(gateways: list[str], workdir: Path):
    """The lab of tests/e2e/gateways.py, whose gateways each have an empty home of their own,
    with the shell start-up files a fresh host's root has (/etc/skel's): every remote command
    runs them, as on a real gateway, and none of this machine's root (pyenv, cargo)."""
    from tests.e2e.gateways import GatewayLab

    class BenchLab(GatewayLab):
        HOLDER_MOUNTS = GatewayLab.HOLDER_MOUNTS + " && { cp -p /etc/skel/.bashrc /etc/skel/.profile /root/ 2>/dev/null || true; }"

    return BenchLab(gateways, workdir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from tests.e2e.gateways import missing_gateway_prerequisites

    missing = missing_gateway_prerequisites()
    if missing:
        print("the gateway bench needs, and this machine lacks:\n  - " + "\n  - ".join(missing), file=sys.stderr)
        return 1
    if not (BIN / "skyplan").exists():
        print(f"no skyplan console script next to {sys.executable}: run this with the project's venv python", file=sys.stderr)
        return 1
    topology = make_topology(args.gateways)
    ansible_problem = "not run (--no-ansible)" if args.no_ansible else ansible.install(args.ansible_venv)
    if ansible_problem and not args.no_ansible:
        print(ansible_problem, file=sys.stderr)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="skyplan-bench-gw-"))
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{args.gateways}-gateways"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    load_at_start = load_average()
    lab = bench_lab(topology.gateways, folder / "lab")
    try:
        started = time.perf_counter()
        lab.start()
        if args.kex:
            # For every tool alike: the line goes into the ssh config both skyplan and Ansible use.
            lab.ssh_config.write_text(lab.ssh_config.read_text().replace("Host *\n", f"Host *\n    KexAlgorithms {args.kex}\n", 1))
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
            if args.keep_connections:
                run_skyplan(h, cycle, args.parallelism, keep=args.keep_connections)
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
    print(f"{ssh_version()}; key exchange: {args.kex or 'OpenSSH default'}; each gateway's root has a fresh home (/etc/skel)")
    print(NOTES.format(iface=INTERFACE), end="")
    print(f"Ansible: {ansible_problem}\n" if ansible_problem else ANSIBLE_NOTE.format(ansible=ansible.version(args.ansible_venv)))
    print(render_table(h.results))
    print(render_touched(h.results, topology))
    return 0


if __name__ == "__main__":
    sys.exit(main())
