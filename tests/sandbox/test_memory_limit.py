"""A template that keeps thousands of long strings alive stops at the memory limit, not the machine.

Each value stays under the size limits, so only the memory cap stops it before the time limit.
The hostile render runs in a subprocess with a hard address-space limit as a backstop: when the
cap regresses, the test fails there instead of exhausting the machine.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest
from jinja2 import StrictUndefined

from skyplan.sandbox import Limits, TemplateFailure
from skyplan.sandbox.environment import LimitedEnvironment, compile_template, render

# Every pass of the loop builds a new 30-million-character string and keeps it: 3 TB in all.
HOARDER = (
    "{% set n = namespace(kept=[]) %}{% for i in range(100000) %}"
    "{% set n.kept = n.kept + [('x' * 30000000) ~ i] %}{% endfor %}{{ n.kept|length }}"
)

DRIVER = """
import json, resource, sys
from jinja2 import StrictUndefined
from skyplan.sandbox import Limits, TemplateFailure
from skyplan.sandbox.environment import LimitedEnvironment, compile_template, render
limits = Limits(seconds=60.0, memory_bytes=256 * 1024 * 1024)
env = LimitedEnvironment(limits, undefined=StrictUndefined)
before = resource.getrlimit(resource.RLIMIT_DATA)
try:
    render(compile_template(env, sys.argv[1]), {})
    outcome = "rendered"
except TemplateFailure as exc:
    outcome = exc.reason
print(json.dumps({"outcome": outcome, "restored": resource.getrlimit(resource.RLIMIT_DATA) == before,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

BACKSTOP = 3 * 1024 * 1024 * 1024


def _backstop() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (BACKSTOP, BACKSTOP))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the cap uses Linux's RLIMIT_DATA")
def test_a_template_hoarding_long_strings_stops_at_the_memory_limit():
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, HOARDER], capture_output=True, text=True, timeout=120, preexec_fn=_backstop
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "out of memory while rendering (the limit is 256 MiB)"
    assert result["peak_kb"] < 700 * 1024, "the render grew far past its allowance"
    assert result["restored"], "the process's own limit is put back after the render"


def test_ordinary_renders_leave_the_process_limit_as_it_was():
    before = resource.getrlimit(resource.RLIMIT_DATA)
    env = LimitedEnvironment(Limits(), undefined=StrictUndefined)
    assert render(compile_template(env, "{{ 'x' * 1000 }}{% for i in range(3) %}{{ i }}{% endfor %}"), {}) == "x" * 1000 + "012"
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    with pytest.raises(TemplateFailure):
        render(compile_template(env, "{{ nope }}"), {})
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
