"""Runs one command as a real process and measures its wall time and peak memory."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    seconds: float
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
    out_path = cwd / ".bench-stdout"
    err_path = cwd / ".bench-stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        expired = threading.Event()

        def stop() -> None:
            expired.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, stop) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen the child is reaped
    output = out_path.read_text(errors="replace") + err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    return Run(seconds=seconds, peak_mb=usage.ru_maxrss / 1024, exit_code=proc.returncode, timed_out=expired.is_set(), output=output)
