"""The console scripts' process settings (skyplan/cli/entry.py): what a command starts without."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# A console script, run for real, that says afterwards which of the modules it loaded.
_RUN = """
import json, sys
sys.argv = {argv!r}
from skyplan.cli.entry import {script}
try:
    {script}()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({{"code": code, "loaded": sorted(sys.modules)}}), file=sys.stderr)
"""


def _run(script: str, *args: str, cwd: Path) -> tuple[str, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("SKYPLAN_CONFIG", "SKYPLAN_BACKEND")}
    env["NO_COLOR"] = "1"
    code = _RUN.format(argv=[script, *args], script=script)
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return done.stdout, report


def test_commands_start_without_the_pydantic_plugin_scan(applied: Path) -> None:
    # Validators are built (the state is read and checked, the configuration revived) ...
    out, report = _run("skyctl", "get", "link", cwd=applied)
    assert out.splitlines()[0].split() == ["NAME", "SOURCE", "TARGET", "STATUS", "AGE"]
    # ... without importing importlib.metadata to look for pydantic plugins: 20 ms of each command.
    assert "importlib.metadata" not in report["loaded"]
    assert "No changes." in _run("skyplan", "plan", cwd=applied)[0]


def test_pydantic_gets_the_real_plugin_module_for_anything_else() -> None:
    code = (
        "import sys\n"
        "from skyplan.cli.entry import _without_pydantic_plugins\n"
        "_without_pydantic_plugins()\n"
        "from pydantic.plugin import _loader as loader\n"
        "assert tuple(loader.get_plugins()) == ()\n"
        "assert 'importlib.metadata' not in sys.modules\n"
        # A name the stand-in does not answer is the real module's (a pydantic using it otherwise).
        "print(loader.PYDANTIC_ENTRY_POINT_GROUP)\n"
        "assert sys.modules['pydantic.plugin._loader'] is not loader, 'the real module took its place'\n"
        "assert hasattr(sys.modules['pydantic.plugin._loader'], 'entry_points')\n"
        "from pydantic import BaseModel\n"
        "class Probe(BaseModel):\n"
        "    x: int\n"
        "print(Probe.model_validate({'x': 1}).x)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pydantic", "1"]
