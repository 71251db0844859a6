"""`python -m bench`: time skyplan, skyctl (and Terraform) as real processes at several sizes."""

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
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench import terraform
from bench.generate import SEED, Topology, make_topology, unlinked_pair, write_workspace
from bench.measure import Run, run_process
from bench.report import Measurement, render_comparison, render_growth, render_table

BIN = Path(sys.executable).parent  # the venv whose console scripts we time
EXTRA_LINK = "bench-extra"
MEMORY_NOTE = (
    "wall time (median/min/max s): spawn to exit, process start-up included; targets apply to it\n"
    "cpu s: median user+system time of the process (from wait4); far below wall time means waiting: disk, or a busy machine\n"
    "peak MB: ru_maxrss from wait4(2) on each timed process (largest resident set of any one process in its tree, MiB), max over runs"
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", type=parse_sizes, help="links per workspace, comma-separated (default 1000,10000,100000; --quick: 1000)")
    parser.add_argument("--repeat", type=int, help="timed runs per operation; the median is reported (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 links, one run each, no Terraform unless --terraform-sizes")
    parser.add_argument(
        "--terraform-sizes",
        type=parse_sizes,
        help="sizes to also time with Terraform (default 1000; 'none' skips it). "
        "Terraform's apply grows much faster than linearly: 1,100 resources take about 35 s here, 11,000 would take hours",
    )
    parser.add_argument("--no-terraform", action="store_true", help="same as --terraform-sizes none")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before one process is killed and its operation reported as capped (default 120)")
    parser.add_argument("--workdir", type=Path, help="keep the generated workspaces here (e.g. bench/workspaces); default: a temporary folder, removed after")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the generated topologies")
    parser.add_argument("--json", dest="json_path", type=Path, help="also write every run's numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [1_000] if args.quick else [1_000, 10_000, 100_000]
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.no_terraform or args.terraform_sizes is None and args.quick:
        args.terraform_sizes = []
    elif args.terraform_sizes is None:
        args.terraform_sizes = [1_000]
    if args.terraform_sizes and terraform.terraform_binary() is None:
        print("note: terraform is not on PATH; timing skyplan only", file=sys.stderr)
        args.terraform_sizes = []
    return args


class Bench:
    """Runs operations, keeps every Measurement, and reports progress on stderr as it goes."""

    def __init__(self, repeat: int, timeout: float) -> None:
        self.repeat = repeat
        self.timeout = timeout
        self.measurements: list[Measurement] = []
        self.skyplan_env = skyplan_env()

    def measure(self, operation: str, topology: Topology, argv: list[str], cwd: Path, env: dict[str, str],
                check: Callable[[Run], str | None], before: Callable[[int], None] | None = None) -> Measurement:
        """Run `argv` `repeat` times; `before(i)` prepares run i untimed; `check` returns a problem or None."""
        m = Measurement(operation, len(topology.links), len(topology.clusters))
        self.measurements.append(m)
        for i in range(self.repeat):
            if before:
                before(i)
            run = run_process(argv, cwd, env, self.timeout)
            if run.timed_out:
                m.problem = f"capped: killed after {self.timeout:g} s (peak {run.peak_mb:.0f} MB by then)"
            elif run.exit_code != 0:
                m.problem = f"exit {run.exit_code}: {last_line(run.output)}"
            else:
                m.problem = check(run)
            progress(f"  {operation}: run {i + 1}/{self.repeat}: {run.seconds:.3f} s, cpu {run.cpu_seconds:.3f} s, {run.peak_mb:.0f} MB" + (f" -- {m.problem}" if m.problem else ""))
            if m.problem:
                break  # a capped or failed run would only repeat itself
            m.runs.append(run)
        return m

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
            shutil.rmtree(applied, ignore_errors=True)
            write_workspace(applied, topology)

        def applied_everything(run: Run) -> str | None:
            if f"Apply complete! Resources: {topology.resource_count} added" not in run.output:
                return f"apply did not add all {topology.resource_count} resources"
            written = len(list(applied.glob("wireguard/*/wgsky0.conf")))
            return None if written == len(topology.clusters) else f"{written} of {len(topology.clusters)} configs written"

        apply = self.measure("skyplan apply (from empty)", topology, [skyplan, "apply", "--auto-approve"], applied, env,
                             applied_everything, before=empty_workspace)
        if not apply.complete:
            self.skip(("skyplan plan (no change)", "skyctl get link", "skyctl create link", "skyctl delete link"),
                      topology, "skipped: no applied workspace")
            return

        # The last apply's workspace, unchanged, is what the remaining operations work on.
        self.measure("skyplan plan (no change)", topology, [skyplan, "plan"], applied, env,
                     lambda run: None if "No changes." in run.output else "plan found changes")
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


def describe_machine(args: argparse.Namespace, load_at_start: str) -> str:
    from importlib.metadata import version

    tf = "not used"
    if args.terraform_sizes:
        out = subprocess.run(["terraform", "version"], capture_output=True, text=True, env={**os.environ, "CHECKPOINT_DISABLE": "1"}).stdout
        match = re.search(r"Terraform (v\S+)", out)
        tf = match.group(1) if match else "(version unknown)"
    return (
        f"skyplan {version('skyplan')}, Python {platform.python_version()}, {os.cpu_count()} CPUs, terraform {tf}\n"
        f"runs per operation: {args.repeat}; cap per process: {args.timeout:g} s; seed {args.seed}\n"
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
    bench = Bench(args.repeat, args.timeout)
    load_at_start = load_average()
    try:
        warm_up(root, bench.skyplan_env)
        for size in sorted(set(args.sizes) | set(args.terraform_sizes)):
            topology = make_topology(size, args.seed)
            folder = root / f"{size}-links"
            if folder.exists():
                shutil.rmtree(folder)  # a kept workdir from an earlier run
            progress(f"== {size:,} links over {len(topology.clusters):,} clusters")
            if size in args.sizes:
                bench.run_skyplan(topology, folder)
            if size in args.terraform_sizes:
                bench.run_terraform(topology, folder, root)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(describe_machine(args, load_at_start))
    print(render_table(bench.measurements))
    for section in (render_growth(bench.measurements, args.sizes), render_comparison(bench.measurements)):
        if section:
            print(section)
    if args.json_path:
        results = [{**asdict(m), "runs": [{k: v for k, v in asdict(r).items() if k != "output"} for r in m.runs]} for m in bench.measurements]
        args.json_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0
