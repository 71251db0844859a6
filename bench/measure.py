"""Runs one command as a real process and measures its wall time, CPU time and peak memory.

The commands are started by a small spawner process of our own, not by the bench itself: on
Linux a child's ru_maxrss is at least the resident set of the process that forked it (at exec,
the kernel keeps the larger of the old address space's high-water mark), so a bench holding a
100,000-link topology would lend every small command it starts its own hundred MB. The spawner
is a bare Python that imports almost nothing, so that floor is its ~10 MB.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float  # user + system: what the run cost, whatever else the machine was doing
    peak_mb: float  # largest resident set of any process in the tree, in MiB
    exit_code: int
    timed_out: bool
    output: str  # stdout then stderr, for checking what the command said


# One request per line on stdin: {argv, cwd, env, timeout, out, err}; one JSON answer per line.
# Wall time from just before the fork to the reap, as a user sees the command run. The child gets
# its own session, so a timeout (SIGALRM) kills its whole tree, and so does the spawner's end.
SPAWNER = r"""
import json, os, signal, sys, time
child = [0]
expired = [False]
def expire(signum, frame):
    expired[0] = True
    try:
        os.killpg(child[0], signal.SIGKILL)
    except ProcessLookupError:
        pass
def stop(signum, frame):
    if child[0]:
        try:
            os.killpg(child[0], signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(1)
signal.signal(signal.SIGALRM, expire)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)  # Ctrl-C reaches the bench and us: end the child with us
for line in sys.stdin:
    r = json.loads(line)
    out = os.open(r["out"], os.O_WRONLY | os.O_TRUNC)
    err = os.open(r["err"], os.O_WRONLY | os.O_TRUNC)
    expired[0] = False
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.setsid()
            os.chdir(r["cwd"])
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.closerange(3, 65536)
            os.execvpe(r["argv"][0], r["argv"], r["env"])
        except BaseException as exc:
            os.write(2, f"could not start {r['argv'][0]}: {exc}\n".encode())
        os._exit(127)
    child[0] = pid
    os.close(out)
    os.close(err)
    if r["timeout"]:
        signal.setitimer(signal.ITIMER_REAL, r["timeout"])
    _, status, usage = os.wait4(pid, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - start
    child[0] = 0
    answer = {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss,
              "exit_code": os.waitstatus_to_exitcode(status), "timed_out": expired[0] and os.WIFSIGNALED(status)}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
"""

_spawner: subprocess.Popen | None = None
_lock = threading.Lock()  # one command at a time per spawner


def _the_spawner() -> subprocess.Popen:
    global _spawner
    if _spawner is None or _spawner.poll() is not None:
        # -S -I: no site packages and no environment, so the spawner stays as small as Python gets.
        _spawner = subprocess.Popen([sys.executable, "-S", "-I", "-c", SPAWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        atexit.register(_close, _spawner)
    return _spawner


def _close(spawner: subprocess.Popen) -> None:
    if spawner.poll() is None:
        spawner.stdin.close()  # type: ignore[union-attr]
        spawner.wait()


def run_process(argv: list[str], cwd: Path, env: dict[str, str], timeout: float | None = None) -> Run:
    """Wall time from spawn to exit, and the peak RSS that wait4(2) reports for this child.

    wait4 gives the rusage of this one child together with the descendants it waited for, so
    ru_maxrss is the largest peak RSS of any single process in the tree (Linux reports KiB). It
    is not a sum over processes that run at once; skyplan and terraform_data-only Terraform run as
    one process, so for them it is simply that process's peak.
    """
    # Output goes to files, not pipes, so that a command's output can never fill a pipe and stall it.
    with tempfile.NamedTemporaryFile() as out, tempfile.NamedTemporaryFile() as err, _lock:
        spawner = _the_spawner()
        request = {"argv": [str(a) for a in argv], "cwd": str(cwd), "env": env, "timeout": timeout or 0, "out": out.name, "err": err.name}
        spawner.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
        spawner.stdin.flush()  # type: ignore[union-attr]
        line = spawner.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the bench's spawner ended while running {argv[0]} (exit {spawner.wait()})")
        answer = json.loads(line)
        output = (Path(out.name).read_bytes() + Path(err.name).read_bytes()).decode(errors="replace")
    return Run(seconds=answer["seconds"], cpu_seconds=answer["cpu"], peak_mb=answer["maxrss_kib"] / 1024, exit_code=answer["exit_code"],
               timed_out=answer["timed_out"], output=output)
