"""Real plans for the policy tools, and checkov in a virtualenv of its own.

checkov pins `packaging<24` while pytest needs `packaging>=24`, and brings a hundred packages:
it lives in `.venv-checkov` (made by .ci/setup, or here on first use), not in the test venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workspaces import BASIC

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "examples" / "policies"
CHECKOV_REQUIREMENTS = Path(__file__).with_name("checkov-requirements.txt")

# The review scenario every policy test reads: after an apply of BASIC, one endpoint moves to
# another port, a new cluster on port 4500 joins, ap-south leaves, and us-west's key is lost.
CHANGED = (
    BASIC.replace("198.51.100.20:51820", "198.51.100.20:51821")
    .replace(
        "  - name: ap-south\n    endpoint: vpn.ap-south.example.net:51820\n    subnets: [10.30.0.0/16]\n",
        "  - name: new-site\n    endpoint: 192.0.2.44:4500\n    subnets: [10.40.0.0/16]\n",
    )
    .replace("  - name: us-ap\n    source: us-west\n    target: ap-south\n", "")
    + "  - name: us-new\n    source: us-west\n    target: new-site\n"
)


@pytest.fixture
def review_plan(basic: Path, skyplan) -> dict:
    """The JSON of a saved plan of CHANGED, as `skyplan show PLAN --json` prints it."""
    import json

    assert skyplan("apply", "--auto-approve").exit_code == 0
    (basic / "links.yaml").write_text(CHANGED)
    (basic / ".skyplan/keys/us-west.key").unlink()
    planned = skyplan("plan", "--out", "links.plan")
    assert planned.exit_code == 0, planned.output
    shown = skyplan("show", "links.plan", "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    """checkov from PyPI, in its own virtualenv: $SKYPLAN_TEST_CHECKOV, or .venv-checkov."""
    if os.environ.get("SKYPLAN_TEST_CHECKOV"):
        return Path(os.environ["SKYPLAN_TEST_CHECKOV"])
    venv = REPO / ".venv-checkov"
    binary = venv / "bin" / "checkov"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(CHECKOV_REQUIREMENTS)],
            check=True,
        )
    return binary
