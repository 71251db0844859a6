"""The same full mesh as wg-meshconf (PyPI) renders it: its CSV database, `init`, then the timed `genconfig`.

wg-meshconf keeps every peer in one CSV file (name, address, endpoint, listen port, extra
AllowedIPs, private key) and writes one wg-quick config per peer, with a [Peer] section for every
other peer. It writes no state and keeps no history, which is what skyplan's apply is set against.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.generate import Topology

DEFAULT_VENV = Path(tempfile.gettempdir()) / "skyplan-bench-cache" / "wg-meshconf-venv"
REQUIREMENT = "wg-meshconf>=2"  # as in the project's test extra
# wg-meshconf's own database columns (database_manager.KEY_TYPE), in its order.
COLUMNS = ("Name", "Address", "Endpoint", "AllowedIPs", "ListenPort", "PersistentKeepalive", "FwMark", "PrivateKey",
           "DNS", "MTU", "Table", "PreUp", "PostUp", "PreDown", "PostDown", "SaveConfig")


def find_or_install(venv: Path = DEFAULT_VENV) -> tuple[str | None, str]:
    """The wg-meshconf program and its version, or None and why there is none.

    The one next to this Python (the test extra installs it) or on PATH comes first; otherwise it
    is installed from PyPI into a venv of its own, once.
    """
    program = shutil.which("wg-meshconf", path=str(Path(sys.executable).parent)) or shutil.which("wg-meshconf")
    if program is None and not (venv / "bin" / "wg-meshconf").exists():
        print(f"installing {REQUIREMENT} into {venv} ...", file=sys.stderr, flush=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        # Few retries and a short timeout: without a network the row should say so, not wait minutes.
        pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--retries", "1", "--timeout", "20", REQUIREMENT]
        for argv in ([sys.executable, "-m", "venv", str(venv)], pip):
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
                return None, f"wg-meshconf is not installed and did not install: {lines[-1].strip()[:160] if lines else f'exit {done.returncode}'}"
    program = program or str(venv / "bin" / "wg-meshconf")
    return program, version(program)


def version(program: str) -> str:
    """The installed distribution's version, asked of the Python that runs the program."""
    python = Path(program).parent / "python"
    if not python.exists():
        return "?"
    done = subprocess.run([str(python), "-c", "from importlib.metadata import version; print(version('wg-meshconf'))"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "?"


def write_database(folder: Path, topology: Topology) -> Path:
    """database.csv with every peer but no private keys: `wg-meshconf init` fills those in.

    The same mesh as skyplan's: each peer's overlay address is the one skyplan allocates from the
    pool (100.64.0.1, .2, ... in cluster order), its endpoint and listen port, its subnet as extra
    AllowedIPs, and PersistentKeepalive 25. (`addpeer` once per peer builds the same file, but at
    a fresh process per peer, about a minute for 200.)
    """
    folder.mkdir(parents=True, exist_ok=False)
    path = folder / "database.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, COLUMNS, quoting=csv.QUOTE_ALL)
        writer.writeheader()
        for i, (name, endpoint, subnet) in enumerate(topology.clusters, start=1):
            host, port = endpoint.rsplit(":", 1)
            writer.writerow({"Name": name, "Address": f"100.64.{i >> 8}.{i & 255}/32", "Endpoint": host, "AllowedIPs": subnet,
                             "ListenPort": port, "PersistentKeepalive": "25"})
    return path


def init_argv(program: str) -> list[str]:
    """Generates the private key of every peer that has none (untimed set-up)."""
    return [program, "init"]


def genconfig_argv(program: str) -> list[str]:
    return [program, "genconfig", "-o", "output"]


def check_configs(folder: Path, nodes: int) -> str | None:
    """None if `folder` holds `nodes` configs with nodes-1 [Peer] sections each; otherwise what is wrong."""
    return count_problem(sorted(folder.glob("*.conf")), nodes)


def count_problem(files: list[Path], nodes: int) -> str | None:
    if len(files) != nodes:
        return f"{len(files)} of {nodes} configs written"
    for path in files:
        peers = len(re.findall(r"^\[Peer\]", path.read_text(), re.M))
        if peers != nodes - 1:
            return f"{path.parent.name}/{path.name}: {peers} peers, not {nodes - 1}"
    return None
