"""Runs one command as a real process and measures its wall time and peak memory."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
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


def run_process(argv: list[str], cwd: Path, env: dict[str, str], timeout: float | None = None) -> Run:
    """Wall time from spawn to exit, and the peak RSS that wait4(2) reports for this child.

    wait4 gives the rusage of this one child together with the descendants it waited for, so
    ru_maxrss is the largest peak RSS of any single process in the tree (Linux reports KiB). It
    is not a sum over processes that run at once; skyplan and terraform_data-only Terraform run as
    one process, so for them it is simply that process's peak.
    """
    # Output goes to files, not pipes: we wait with wait4, not communicate(), so a pipe could fill up.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        expired = threading.Event()

        def stop() -> None:
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it ended just now, on its own

        timer = threading.Timer(timeout, stop) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            # The child has its own session, so Ctrl-C does not reach it: end it with us.
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            raise
        finally:
            if timer:
                timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen the child is reaped
        out.seek(0)
        err.seek(0)
        output = (out.read() + err.read()).decode(errors="replace")
    return Run(seconds=seconds, cpu_seconds=usage.ru_utime + usage.ru_stime, peak_mb=usage.ru_maxrss / 1024, exit_code=proc.returncode, timed_out=expired.is_set() and proc.returncode == -signal.SIGKILL, output=output)
