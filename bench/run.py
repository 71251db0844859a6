"""`python -m bench`: time skyplan and skyctl as real processes at several sizes, next to wg-meshconf,
Terraform and SSH gateways, and print the issue's targets met or missed."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import meshconf, terraform
from bench.generate import SEED, Topology, full_mesh, make_topology, unlinked_pair, write_workspace
from bench.measure import Run, run_process
from bench.report import Measurement, render_growth, render_ratios, render_table, render_targets

BIN = Path(sys.executable).parent  # the venv whose console scripts we time
EXTRA_LINK = "bench-extra"
LARGE = 10_000  # sizes above this run --large-repeat times
# The gateway bench's runs (bench/gateways.py RUNS), as rows of this table.
# By (provider.ssh.keep_connections seconds, run); with keep_connections, the first apply logs in
# as the default does, and the runs after it reuse its connections.
GATEWAY_KEEP = 60
GATEWAY_OPERATIONS = {
    (0, "first apply"): "gateways: skyplan apply (first)",
    (0, "no-change run"): "gateways: skyplan plan (no change)",
    (0, "one-link change"): "gateways: skyplan apply (one-link change)",
    (GATEWAY_KEEP, "first apply"): "gateways, keep_connections 60s: skyplan apply (first: logs in)",
    (GATEWAY_KEEP, "no-change run"): "gateways, keep_connections 60s: skyplan plan (no change, kept)",
    (GATEWAY_KEEP, "one-link change"): "gateways, keep_connections 60s: skyplan apply (one-link change, kept)",
}
GATEWAY_PARALLELISM = 10  # ssh.parallelism, as bench.gateways' default
MEMORY_NOTE = (
    "wall time (median/min/max s): spawn to exit, process start-up included; targets apply to it\n"
    "cpu s: median user+system time of the process (from wait4); far below wall time means waiting: disk, or a busy machine\n"
    "peak MB: ru_maxrss from wait4(2) on each timed process (largest resident set of any one process in its tree, MiB), max over runs;\n"
    "  the processes are started by a small spawner (about 8 MiB), so that the bench's own memory is not counted as theirs"
)


def skyplan_env() -> dict[str, str]:
    """The environment of timed skyplan and skyctl processes."""
    # The file's own local state, whatever the caller's environment points at. Bytecode may be
    # written, as in a normal install: the warm-up then compiles it once, untimed.
    dropped = ("SKYPLAN_CONFIG", "SKYPLAN_BACKEND", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["NO_COLOR"] = "1"
    return env


def parse_sizes(text: str) -> list[int]:
    if text.strip().lower() in ("", "none"):
        return []
    return sorted({int(part.replace("_", "")) for part in text.split(",")})


def parse_count(text: str) -> int:
    return 0 if text.strip().lower() in ("", "none") else int(text.replace("_", ""))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", type=parse_sizes, help="links per workspace, comma-separated (default 1000,10000,100000; --quick: 1000)")
    parser.add_argument("--repeat", type=int, help="timed runs per operation; the median is reported (default 3; --quick: 1)")
    parser.add_argument("--large-repeat", type=int,
                        help=f"timed runs per operation at sizes above {LARGE:,} links (default 1, as one round of 100,000 takes minutes; at most --repeat)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1,000 links, a 20-node mesh, one run each, no Terraform and no gateways unless asked for")
    parser.add_argument(
        "--terraform-sizes",
        type=parse_sizes,
        help="sizes to also time with Terraform (default 1000; 'none' skips it). "
        "Terraform's apply grows much faster than linearly: 1,100 resources take about 35 s here, 11,000 would take hours",
    )
    parser.add_argument("--no-terraform", action="store_true", help="same as --terraform-sizes none")
    parser.add_argument("--terraform-repeat", type=int,
                        help="timed runs per Terraform operation (default 1: one apply of 1,100 resources takes 35 to 100 s here; at most --repeat)")
    parser.add_argument("--mesh", type=parse_count,
                        help="clusters of the full mesh applied by skyplan and rendered by wg-meshconf (default 200; --quick: 20; 0 skips it)")
    parser.add_argument("--gateways", type=parse_count,
                        help="SSH gateways for the gateway rows, as root with wireguard-go and sshd (default 20; --quick: 0, which skips them)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before one process is killed and its operation reported as capped (default 300)")
    parser.add_argument("--workdir", type=Path, help="keep the generated workspaces here (e.g. bench/workspaces); default: a temporary folder, removed after")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the generated topologies")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write every run's numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [1_000] if args.quick else [1_000, 10_000, 100_000]
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    args.large_repeat = min(args.repeat, 1 if args.large_repeat is None else args.large_repeat)
    args.terraform_repeat = min(args.repeat, 1 if args.terraform_repeat is None else args.terraform_repeat)
    if args.mesh is None:
        args.mesh = 20 if args.quick else 200
    if args.gateways is None:
        args.gateways = 0 if args.quick else 20
    # Why an operation is not in the table at all, for the targets section.
    args.absent = {}
    if args.no_terraform or args.terraform_sizes is None and args.quick:
        args.terraform_sizes = []
        args.absent["terraform apply (from empty)"] = "not run (no Terraform asked for)"
    elif args.terraform_sizes is None:
        args.terraform_sizes = [1_000]
    if args.terraform_sizes and terraform.terraform_binary() is None:
        print("note: terraform is not on PATH; timing skyplan only", file=sys.stderr)
        args.terraform_sizes = []
        args.absent["terraform apply (from empty)"] = "not measured: terraform is not on PATH"
    if args.mesh == 1 or args.mesh > 65_536:
        parser.error("--mesh takes 0 (no mesh) or 2 to 65,536 clusters")
    if args.mesh == 0:
        args.absent["skyplan apply (full mesh)"] = "not run (--mesh 0)"
    if 0 < args.gateways < 3:
        parser.error("--gateways takes 0 (no gateways) or at least 3: the change adds a link between the chain's two ends")
    if args.gateways == 0:
        for operation in GATEWAY_OPERATIONS.values():
            args.absent[operation] = "not run (--gateways 0)"
    return args


@dataclass
class Timed:
    """One operation to time: its command, where, and how to prepare (untimed) and check each run."""

    operation: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    check: Callable[[Run], str | None]
    before: Callable[[int], None] | None = None


class Bench:
    """Runs operations, keeps every Measurement, and reports progress on stderr as it goes."""

    def __init__(self, repeat: int, timeout: float, aside: Path | None = None) -> None:
        self.repeat = repeat
        self.timeout = timeout
        self.measurements: list[Measurement] = []
        self.skyplan_env = skyplan_env()
        self.versions: dict[str, str] = {}  # other tools' versions, for the header
        # Where a run's output goes before the next run: removed only when the bench ends.
        self.aside = aside
        self._set_aside = 0

    def set_aside(self, path: Path) -> None:
        """Clear `path` for the next timed run by moving it away, not deleting it.

        Deleting thousands of files just before a timed run makes that run pay for them: ext4
        does not reuse an inode number freed in the last few minutes (`recently_deleted`), and
        each new file's search for a free one walks past every one just freed. A user applying
        to a new workspace pays none of that, so neither tool here does: what a run made is
        renamed away, and everything set aside is removed after the last measurement.
        """
        if not path.exists() and not path.is_symlink():
            return
        if self.aside is None:
            shutil.rmtree(path, ignore_errors=True)
            return
        self.aside.mkdir(parents=True, exist_ok=True)
        self._set_aside += 1
        os.rename(path, self.aside / f"{self._set_aside}-{path.name}")

    def measure(self, operation: str, topology: Topology, argv: list[str], cwd: Path, env: dict[str, str],
                check: Callable[[Run], str | None], before: Callable[[int], None] | None = None) -> Measurement:
        """Run `argv` `repeat` times; `before(i)` prepares run i untimed; `check` returns a problem or None."""
        return self.alternate(topology, [Timed(operation, argv, cwd, env, check, before)])[0]

    def alternate(self, topology: Topology, operations: list[Timed]) -> list[Measurement]:
        """Time the operations in turn, `repeat` rounds, so that a change in the machine's load
        falls on all of them alike: what a ratio of two tools needs."""
        found = [Measurement(t.operation, len(topology.links), len(topology.clusters)) for t in operations]
        self.measurements.extend(found)
        for i in range(self.repeat):
            for t, m in zip(operations, found):
                if m.problem:
                    continue  # a capped or failed run would only repeat itself
                if t.before:
                    t.before(i)
                run = run_process(t.argv, t.cwd, t.env, self.timeout)
                if run.timed_out:
                    m.problem = f"capped: killed after {self.timeout:g} s (peak {run.peak_mb:.0f} MB by then)"
                elif run.exit_code != 0:
                    m.problem = f"exit {run.exit_code}: {last_line(run.output)}"
                else:
                    m.problem = t.check(run)
                progress(f"  {t.operation}: run {i + 1}/{self.repeat}: {run.seconds:.3f} s, cpu {run.cpu_seconds:.3f} s, {run.peak_mb:.0f} MB"
                         + (f" -- {m.problem}" if m.problem else ""))
                if not m.problem:
                    m.runs.append(run)
        return found

    def skip(self, operations: tuple[str, ...], topology: Topology, problem: str) -> None:
        for operation in operations:
            self.measurements.append(Measurement(operation, len(topology.links), len(topology.clusters), problem=problem))

    def run_skyplan(self, topology: Topology, folder: Path) -> None:
        env = self.skyplan_env
        skyplan = str(BIN / "skyplan")
        validated = write_workspace(folder / "validate", topology).parent
        self.measure("skyplan validate", topology, [skyplan, "validate"], validated, env,
                     lambda run: None if "Success!" in run.output else "validate did not say Success!")

        applied = folder / "applied"

        def empty_workspace(_: int) -> None:
            self.set_aside(applied)
            write_workspace(applied, topology)

        def applied_everything(run: Run) -> str | None:
            if f"Apply complete! Resources: {topology.resource_count} added" not in run.output:
                return f"apply did not add all {topology.resource_count} resources"
            written = len(list(applied.glob("wireguard/*/wgsky0.conf")))
            return None if written == len(topology.clusters) else f"{written} of {len(topology.clusters)} configs written"

        apply = self.measure("skyplan apply (from empty)", topology, [skyplan, "apply", "--auto-approve"], applied, env,
                             applied_everything, before=empty_workspace)
        if not apply.complete:
            self.skip(("skyplan plan (no change, first after the apply)", "skyplan plan (no change)", "skyplan plan (file just edited)", "skyctl get link", "skyctl create link",
                       "skyctl delete link"), topology, "skipped: no applied workspace")
            return

        # The last apply's workspace, unchanged, is what the remaining operations work on.
        no_changes = lambda run: None if "No changes." in run.output else "plan found changes"  # noqa: E731

        def as_after_the_apply(_: int) -> None:
            # Untimed: what an apply leaves behind is no record of a refresh, of a plan with no
            # changes or of a checked state for its new state (README, "What skyplan trusts"):
            # each run here plans as the first plan after an apply, or in a fresh checkout, does.
            for name in ("refresh.json", "no-changes.json", "state-checked.json"):
                (applied / ".skyplan" / "cache" / name).unlink(missing_ok=True)

        self.measure("skyplan plan (no change, first after the apply)", topology, [skyplan, "plan"], applied, env, no_changes,
                     before=as_after_the_apply)
        # And again, as a plan after a plan: the records of the one before say what it found.
        self.measure("skyplan plan (no change)", topology, [skyplan, "plan"], applied, env, no_changes)

        def edited(i: int) -> None:
            # Untimed: a comment more is a new text, so the validated-config cache (keyed by the
            # text) misses and the plan parses and validates the file again, as after a user's edit.
            with (applied / "links.yaml").open("a") as out:
                out.write(f"# edited before cold plan run {i + 1}\n")

        self.measure("skyplan plan (file just edited)", topology, [skyplan, "plan"], applied, env, no_changes, before=edited)
        lines = len(topology.links) + 1  # a header, then one line per link
        self.measure("skyctl get link", topology, self.skyctl("get", "link"), applied, env,
                     lambda run: None if run.output.count("\n") == lines else f"printed {run.output.count(chr(10))} lines, not {lines}")

        # A new peering between two unlinked clusters; each run of one command is undone (untimed)
        # by the other before the next run, so every run does the same work.
        source, target = unlinked_pair(topology)
        create = self.skyctl("create", "link", EXTRA_LINK, "-s", source, "-t", target)
        delete = self.skyctl("delete", "link", EXTRA_LINK)

        def untimed(argv: list[str]) -> Callable[[int], None]:
            def prepare(i: int) -> None:
                if i > 0 and run_process(argv, applied, env, self.timeout).exit_code != 0:
                    raise SystemExit(f"could not run {' '.join(argv[1:])} between timed runs")
            return prepare

        self.measure("skyctl create link", topology, create, applied, env,
                     lambda run: None if f"Created link {EXTRA_LINK}." in run.output else "create did not confirm",
                     before=untimed(delete))
        # The link from the last create run exists now, which the first delete run removes.
        self.measure("skyctl delete link", topology, delete, applied, env,
                     lambda run: None if f"Deleted link {EXTRA_LINK}." in run.output else "delete did not confirm",
                     before=untimed(create))

    def skyctl(self, *args: str) -> list[str]:
        return [str(BIN / "skyctl"), *args, "--config", "links.yaml"]

    def run_full_mesh(self, nodes: int, folder: Path) -> None:
        """skyplan's apply of a full mesh from empty, next to wg-meshconf's genconfig of the same
        mesh (set up untimed: its database and keys), timed in turn in the same run."""
        topology = full_mesh(nodes)
        operations = ("skyplan apply (full mesh)", "wg-meshconf genconfig (full mesh)")
        progress(f"== full mesh of {nodes:,} clusters ({len(topology.links):,} links): skyplan apply, wg-meshconf genconfig")
        ws = folder / "skyplan"

        def empty_workspace(_: int) -> None:
            self.set_aside(ws)
            write_workspace(ws, topology, mesh=True)

        def applied_everything(run: Run) -> str | None:
            if f"Apply complete! Resources: {topology.resource_count} added" not in run.output:
                return f"apply did not add all {topology.resource_count} resources"
            return meshconf.count_problem(sorted(ws.glob("wireguard/*/wgsky0.conf")), nodes)

        timed = [Timed(operations[0], [str(BIN / "skyplan"), "apply", "--auto-approve"], ws, self.skyplan_env, applied_everything,
                       empty_workspace)]
        program, found = meshconf.find_or_install()
        if program is None:
            problem = found
        else:
            self.versions["wg-meshconf"] = found
            mesh = folder / "wg-meshconf"
            meshconf.write_database(mesh, topology)
            env = {**os.environ, "NO_COLOR": "1"}
            init = run_process(meshconf.init_argv(program), mesh, env, self.timeout)
            problem = None if init.exit_code == 0 else f"wg-meshconf init failed: {last_line(init.output)}"
            timed.append(Timed(operations[1], meshconf.genconfig_argv(program), mesh, env,
                               lambda run: meshconf.check_configs(mesh / "output", nodes),
                               lambda _: self.set_aside(mesh / "output")))
        self.alternate(topology, timed)
        if problem:
            self.skip(operations[1:], topology, problem)

    def run_gateways(self, count: int, folder: Path, rounds: int) -> None:
        """The gateway bench's skyplan runs (bench/gateways.py, without Ansible) as rows of this table."""
        from bench import gateways as gw  # imports bench.run: loaded only here
        from bench.observe import SshCounter, reset_gateways
        from tests.e2e.gateways import GatewayLab, missing_gateway_prerequisites

        topology = gw.make_topology(count)
        shown = Topology(clusters=[(g, "", "") for g in topology.gateways], links=topology.links)
        missing = missing_gateway_prerequisites()
        if missing:
            self.skip(tuple(GATEWAY_OPERATIONS.values()), shown, "skipped: needs " + "; ".join(missing))
            return
        progress(f"== {count} SSH gateways in a chain of {len(topology.links)} links (bench/gateways.py, skyplan only)")
        # The gateway bench's own lab when it has one (bench_lab: the lab with a gateway's home
        # of its own), so that both benches time the same hosts.
        make_lab = getattr(gw, "bench_lab", GatewayLab)
        lab = make_lab(topology.gateways, folder / "lab")
        h = None
        try:
            lab.start()
            h = gw.Harness(lab, topology, SshCounter(folder, lab, topology.gateways), self.timeout)
            for i in range(rounds):
                # Each round from empty gateways and a fresh workspace, as bench.gateways does it.
                cycle = folder / f"round{i + 1}"
                cycle.mkdir()
                gw.run_skyplan(h, cycle, GATEWAY_PARALLELISM)
                reset_gateways(lab)
                gw.run_skyplan(h, cycle, GATEWAY_PARALLELISM, keep=GATEWAY_KEEP)
                reset_gateways(lab)
        except Exception as exc:  # noqa: BLE001 -- a broken lab must not cost the rest of the run its table
            if h is None or not h.results:
                first = str(exc).strip().splitlines()
                self.skip(tuple(GATEWAY_OPERATIONS.values()), shown, f"lab failed: {type(exc).__name__}: {first[0] if first else ''}"[:200])
                return
            progress(f"  the gateway lab failed after some runs: {type(exc).__name__}: {exc}")
        finally:
            lab.close()
        for (keep, run), operation in GATEWAY_OPERATIONS.items():
            tool = gw.kept_tool(keep) if keep else "skyplan"
            results = [r for r in h.results if r.tool == tool and r.run == run]
            m = Measurement(operation, len(topology.links) + (run == "one-link change"), count)
            m.runs = [r.process for r in results if r.process and not r.problem]
            m.problem = next((r.problem for r in results if r.problem), None)
            if m.problem is None and any(r.check != "ok" for r in results):
                m.problem = "live check: " + next(r.check for r in results if r.check != "ok")
            if not m.runs and m.problem is None:
                m.problem = "not run: the lab failed before it"
            self.measurements.append(m)

    def run_terraform(self, topology: Topology, folder: Path, scratch: Path) -> None:
        env = terraform.terraform_env(scratch)
        ws = folder / "terraform"
        terraform.write_terraform_workspace(ws, topology)
        operations = ("terraform apply (from empty)", "terraform plan (no change)")
        init = run_process(["terraform", "init", "-input=false", "-no-color"], ws, env, self.timeout)
        if init.exit_code != 0:
            self.skip(operations, topology, f"init failed: {last_line(init.output)}")
            return
        added = f"Apply complete! Resources: {topology.resource_count} added"
        apply = self.measure(operations[0], topology, ["terraform", "apply", "-auto-approve", "-input=false", "-no-color"], ws, env,
                             lambda run: None if added in run.output else "apply did not add everything",
                             before=lambda _: terraform.clear_state(ws))
        if not apply.complete:
            self.skip(operations[1:], topology, "skipped: no applied workspace")
            return
        # -detailed-exitcode: exit 0 means no changes; 2 (changes) is reported as a problem.
        self.measure(operations[1], topology, ["terraform", "plan", "-input=false", "-no-color", "-detailed-exitcode"], ws, env,
                     lambda run: None)


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip() and not set(line.strip()) <= set("│╷╵")]
    return lines[-1][:160] if lines else "(no output)"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def describe_machine(args: argparse.Namespace, load_at_start: str, versions: dict[str, str]) -> str:
    from importlib.metadata import version

    tf = "not used"
    if args.terraform_sizes:
        out = subprocess.run(["terraform", "version"], capture_output=True, text=True, env={**os.environ, "CHECKPOINT_DISABLE": "1"}).stdout
        match = re.search(r"Terraform (v\S+)", out)
        tf = match.group(1) if match else "(version unknown)"
    others = "".join(f", {name} {v}" for name, v in versions.items())
    large = f", {args.large_repeat} above {LARGE:,} links" if any(size > LARGE for size in args.sizes) else ""
    large += f", {args.terraform_repeat} for Terraform" if args.terraform_sizes else ""
    return (
        f"skyplan {version('skyplan')}, Python {platform.python_version()}, {os.cpu_count()} CPUs, terraform {tf}{others}\n"
        f"runs per operation: {args.repeat}{large}; cap per process: {args.timeout:g} s; seed {args.seed}\n"
        f"load average at start {load_at_start}, at end {load_average()} (other work on the machine skews the times)\n"
        f"{MEMORY_NOTE}\n"
    )


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def warm_up(folder: Path, env: dict[str, str]) -> None:
    """One untimed small apply and plan, so that no timed run pays for compiling .pyc files."""
    ws = write_workspace(folder / "warm-up", make_topology(50)).parent
    for args in (["apply", "--auto-approve"], ["plan"]):
        run_process([str(BIN / "skyplan"), *args], ws, env)
    run_process([str(BIN / "skyctl"), "get", "link", "--config", "links.yaml"], ws, env)
    shutil.rmtree(ws)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (BIN / "skyplan").exists():
        print(f"no skyplan console script next to {sys.executable}: run this with the project's venv python", file=sys.stderr)
        return 1
    root = args.workdir or Path(tempfile.mkdtemp(prefix="skyplan-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.repeat, args.timeout, aside=root / ".set-aside")
    load_at_start = load_average()
    started = time.perf_counter()
    try:
        warm_up(root, bench.skyplan_env)
        for size in sorted(set(args.sizes) | set(args.terraform_sizes)):
            topology = make_topology(size, args.seed)
            folder = fresh(root / f"{size}-links")
            bench.repeat = args.large_repeat if size > LARGE else args.repeat
            progress(f"== {size:,} links over {len(topology.clusters):,} clusters")
            if size in args.sizes:
                bench.run_skyplan(topology, folder)
            if size in args.terraform_sizes:
                bench.repeat = args.terraform_repeat
                bench.run_terraform(topology, folder, root)
        bench.repeat = args.repeat
        if args.mesh:
            bench.run_full_mesh(args.mesh, fresh(root / f"mesh-{args.mesh}"))
        if args.gateways:
            bench.run_gateways(args.gateways, fresh(root / f"{args.gateways}-gateways"), args.repeat)
    finally:
        shutil.rmtree(root if args.workdir is None else root / ".set-aside", ignore_errors=True)
    print()
    print(describe_machine(args, load_at_start, bench.versions))
    print(render_table(bench.measurements))
    for section in (render_growth(bench.measurements, args.sizes), render_ratios(bench.measurements),
                    render_targets(bench.measurements, args.absent)):
        if section:
            print(section)
    print(f"whole run: {time.perf_counter() - started:.0f} s")
    if args.json_path:
        results = [{**asdict(m), "runs": [{k: v for k, v in asdict(r).items() if k != "output"} for r in m.runs]} for m in bench.measurements]
        args.json_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def fresh(folder: Path) -> Path:
    """`folder`, empty: a kept --workdir may hold an earlier run's."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder
