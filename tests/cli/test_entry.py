"""The console scripts' process settings (skyplan/cli/entry.py): what a command starts without."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# The console script, after `before` has run in its process.
_SCRIPT = """
import sys
{before}
sys.argv = {argv!r}
from skyplan.cli.entry import {script}
{script}()
"""


def _console(script: str, *args: str, cwd: Path, before: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SKYPLAN_CONFIG", "SKYPLAN_BACKEND")}
    env["NO_COLOR"] = "1"
    code = _SCRIPT.format(before=before, argv=[script, *args], script=script)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_commands_start_without_the_pydantic_plugin_scan(applied: Path, tmp_path: Path) -> None:
    loaded = tmp_path / "loaded.json"
    before = f"import atexit, json\natexit.register(lambda: open({str(loaded)!r}, 'w').write(json.dumps(sorted(sys.modules))))"
    # Validators are built (the state is read and checked, the configuration revived) ...
    listed = _console("skyctl", "get", "link", cwd=applied, before=before)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["NAME", "SOURCE", "TARGET", "STATUS", "AGE"]
    # ... without importing importlib.metadata to look for pydantic plugins: 15-20 ms of each command.
    assert "importlib.metadata" not in json.loads(loaded.read_text())
    assert "No changes." in _console("skyplan", "plan", cwd=applied).stdout


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


def test_a_command_that_exits_at_once_keeps_its_exit_code_and_its_whole_output(applied: Path) -> None:
    listed = _console("skyctl", "get", "link", cwd=applied)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.endswith("\n") and listed.stdout.splitlines()[0].split()[0] == "NAME"
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["NAME", "us-ap", "us-eu"]
    missing = _console("skyctl", "get", "link", "nope", cwd=applied)
    assert (missing.returncode, missing.stdout, missing.stderr) == (1, "", "Error: Link 'nope' not found.\n")
    assert _console("skyctl", "no-such-verb", cwd=applied).returncode == 2  # click's usage error
    assert _console("skyplan", "--version", cwd=applied).stdout == "skyplan " + __import__("skyplan").__version__ + "\n"
    many = _console("skyplan", "plan", cwd=applied)
    assert many.returncode == 0 and "No changes." in many.stdout


def test_atexit_handlers_still_run(applied: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    before = f"import atexit\natexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))"
    done = _console("skyctl", "get", "link", cwd=applied, before=before)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "yes"


def test_a_thread_still_running_is_waited_for(applied: Path, tmp_path: Path) -> None:
    marker = tmp_path / "finished"
    # A thread that outlives the command: the normal exit waits for it, and so must this one.
    before = (
        "import threading, time\n"
        f"threading.Thread(target=lambda: (time.sleep(0.5), open({str(marker)!r}, 'w').write('yes'))).start()"
    )
    done = _console("skyctl", "get", "link", cwd=applied, before=before)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "yes"


def test_a_command_under_cprofile_leaves_its_profile(applied: Path, tmp_path: Path) -> None:
    # bench/profile.py runs the console scripts under cProfile, which writes once they return.
    out = tmp_path / "get.prof"
    code = _SCRIPT.format(before="", argv=["skyctl", "get", "link"], script="skyctl")
    script = tmp_path / "skyctl_script.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), str(script)], cwd=applied, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0


def test_a_traced_command_returns_to_its_tracer(applied: Path, tmp_path: Path) -> None:
    # Coverage and debuggers trace; what they do after the command must still happen.
    marker = tmp_path / "after"
    before = "sys.settrace(lambda *a: None)\nimport atexit"
    code = _SCRIPT.format(before=before, argv=["skyctl", "get", "link"], script="skyctl")
    code = f"try:\n" + "".join(f"    {line}\n" for line in code.strip().splitlines()) + f"finally:\n    open({str(marker)!r}, 'w').write('yes')\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=applied, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "yes"


class _Finalized:
    # A `before` that keeps an object whose finalizer leaves a marker, as a plugin's buffered
    # file or temporary would rely on.
    @staticmethod
    def code(marker: Path, foreign_provider: bool) -> str:
        lines = [
            "class Flushes:",
            f"    def __del__(self, open=open): open({str(marker)!r}, 'w').write('yes')",
            "kept = Flushes()",
        ]
        if foreign_provider:
            lines += ["from skyplan.sdk.provider import Provider", "class Theirs(Provider):", "    name = 'theirs'"]
        return "\n".join(lines)


def test_a_third_party_provider_gets_the_normal_exit_and_its_finalizers(applied: Path, tmp_path: Path) -> None:
    marker = tmp_path / "finalized"
    done = _console("skyctl", "get", "link", cwd=applied, before=_Finalized.code(marker, foreign_provider=True))
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "yes"


def test_with_skyplans_own_provider_a_command_exits_at_once(applied: Path, tmp_path: Path) -> None:
    marker = tmp_path / "finalized"
    done = _console("skyctl", "get", "link", cwd=applied, before=_Finalized.code(marker, foreign_provider=False))
    assert done.returncode == 0, done.stderr
    assert not marker.exists()  # no teardown: what the process held was not freed one by one
