"""`python -m bench.profile`: where the time of a 10k-link apply and no-change plan (or a full mesh's apply) goes.

Each operation runs as its own fresh process (the venv's console script) under cProfile, or
pyinstrument with --pyinstrument, so imports and start-up are counted as a user pays them.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from bench.generate import SEED, full_mesh, make_topology, unlinked_pair, write_workspace
from bench.run import EXTRA_LINK, skyplan_env  # the same link and environment as the timed runs

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
OPERATIONS = {
    "apply": ["skyplan", "apply", "--auto-approve"],
    "plan": ["skyplan", "plan"],
    "cold-plan": ["skyplan", "plan"],  # after a comment is appended to links.yaml: the config cache misses
    "get-link": ["skyctl", "get", "link", "--config", "links.yaml"],
    "create-link": ["skyctl", "create", "link", EXTRA_LINK, "-s", "{source}", "-t", "{target}", "--config", "links.yaml"],
}
# Longest first, so that a venv inside the repo is shown as a library, not as project code.
PATH_PREFIXES = sorted(
    {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], sysconfig.get_paths()["stdlib"], str(REPO)},
    key=len,
    reverse=True,
)


def short(path: str) -> str:
    for prefix in PATH_PREFIXES:
        if path.startswith(prefix + "/"):
            return path[len(prefix) + 1 :]
    return path


def is_project_code(path: str) -> bool:
    return path.startswith(str(REPO) + "/") and not path.startswith(sys.prefix + "/")  # the venv may sit in the repo


def render_top(profile: Path, sort: str, top: int, project_only: bool) -> str:
    stats = pstats.Stats(str(profile))
    items = [item for item in stats.stats.items() if not project_only or is_project_code(item[0][0])]
    rows = sorted(items, key=lambda item: item[1][2 if sort == "tottime" else 3], reverse=True)[:top]
    lines = [f"{'calls':>10}  {'own s':>8}  {'total s':>8}  function", f"{'-' * 10}  {'-' * 8}  {'-' * 8}  {'-' * 8}"]
    for (path, line, name), (_, calls, own, total, _) in rows:
        where = name if path == "~" else f"{short(path)}:{line}({name})"  # "~" marks C built-ins
        lines.append(f"{calls:>10}  {own:>8.3f}  {total:>8.3f}  {where}")
    return "\n".join(lines) + "\n"


def profile_run(operation: str, argv: list[str], ws: Path, out: Path, use_pyinstrument: bool, top: int) -> None:
    script = str(BIN / argv[0])
    if use_pyinstrument:
        command = [sys.executable, "-m", "pyinstrument", "--no-color", "-r", "text", "-o", str(out), script, *argv[1:]]
    else:
        command = [sys.executable, "-m", "cProfile", "-o", str(out), script, *argv[1:]]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ws, env=skyplan_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{operation} failed under the profiler: {done.stderr.strip()[-500:]}")
    print(f"=== {' '.join(argv)}  ({seconds:.2f} s wall under the profiler, which adds overhead)\n")
    if use_pyinstrument:
        print(out.read_text())
        return
    # Total time is shown for skyplan's own functions: the click and import frames around them
    # would fill the list with the whole run. Own time is shown for everything, libraries too.
    views = (
        ("cumulative", True, "skyplan functions by total time (the function and what it calls)"),
        ("tottime", False, "functions anywhere by own time (hot spots)"),
    )
    for sort, project_only, title in views:
        print(f"top {top} {title}:")
        print(render_top(out, sort, top, project_only))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--links", type=int, default=10_000, help="workspace size in links (default 10000, over 1,000 clusters)")
    parser.add_argument("--mesh", type=int, help="profile a full mesh of this many clusters (one `meshes:` entry) instead of --links random links")
    parser.add_argument("--operations", default="apply,plan", help=f"comma-separated, in order, from {', '.join(OPERATIONS)} (default apply,plan)")
    parser.add_argument("--top", type=int, default=20, help="functions listed per view (default 20)")
    parser.add_argument("--pyinstrument", action="store_true", help="print pyinstrument's call tree instead of cProfile's tables")
    parser.add_argument("--workdir", type=Path, help="keep the workspace and the profiles (.prof for snakeviz) here")
    args = parser.parse_args(argv)
    operations = args.operations.split(",")
    unknown = [op for op in operations if op not in OPERATIONS]
    if unknown:
        parser.error(f"unknown operation {', '.join(unknown)}; choose from {', '.join(OPERATIONS)}")
    if operations[0] != "apply":
        operations.insert(0, "apply")  # every other operation needs an applied workspace
        print("note: profiling apply first, as the other operations need an applied workspace\n")

    root = args.workdir or Path(tempfile.mkdtemp(prefix="skyplan-profile-"))
    if args.mesh and "create-link" in operations:
        parser.error("create-link needs two unlinked clusters, which a full mesh has not")
    topology = full_mesh(args.mesh) if args.mesh else make_topology(args.links)
    folder = root / (f"profile-mesh-{args.mesh}" if args.mesh else f"profile-{args.links}-links")
    shutil.rmtree(folder, ignore_errors=True)
    ws = write_workspace(folder, topology, mesh=bool(args.mesh)).parent
    source, target = unlinked_pair(topology) if not args.mesh else ("", "")
    shape = "full mesh: " if args.mesh else ""
    print(f"{shape}{len(topology.links):,} links over {len(topology.clusters):,} clusters (seed {SEED})\n")
    try:
        for operation in operations:
            argv = [part.format(source=source, target=target) for part in OPERATIONS[operation]]
            if operation == "cold-plan":
                with (ws / "links.yaml").open("a") as out:
                    out.write("# edited: the validated-config cache misses\n")
            suffix = "txt" if args.pyinstrument else "prof"
            size = f"mesh-{args.mesh}" if args.mesh else args.links
            profile_run(operation, argv, ws, root / f"{operation}-{size}.{suffix}", args.pyinstrument, args.top)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
