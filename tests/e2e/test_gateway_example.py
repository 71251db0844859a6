"""The README's gateway example works as written: examples/gateways on real sshd gateways.

Only the addresses change: the example's hosts become the lab's (its namespaces' underlay
addresses), and its ssh_config the lab's, which has the same Host aliases. Everything else,
links.yaml's gateways (aliases and an ssh:// URL), provider.ssh and the commands, is as shipped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .gateways import GatewayLab, running_lab

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateways"
HOSTS = {"us-west": "203.0.113.10", "eu-central": "198.51.100.20", "ap-south": "192.0.2.30"}


@pytest.fixture
def example_lab(gateway_prerequisites, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_lab(list(HOSTS), tmp_path / "lab", monkeypatch) as lab:
        yield lab


def test_the_gateway_example_applies_links_and_plans_no_changes(example_lab: GatewayLab, tmp_path: Path, monkeypatch, skyplan):
    lab = example_lab
    workspace = tmp_path / "gateways"
    shutil.copytree(EXAMPLE, workspace)
    text = (workspace / "links.yaml").read_text()
    for name, host in HOSTS.items():
        assert host in text
        text = text.replace(host, lab.underlay[name])
    (workspace / "links.yaml").write_text(text)
    shutil.copy(lab.ssh_config, workspace / "ssh_config")
    monkeypatch.chdir(workspace)

    assert skyplan("validate").exit_code == 0
    applied = skyplan("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete! Resources: 5 added, 0 changed, 0 destroyed." in applied.output
    again = skyplan("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes. Links match the configuration." in again.output

    state = json.loads((workspace / ".skyplan/state.json").read_text())
    address = {r["name"]: r["computed"]["address"] for r in state["resources"] if r["type"] == "cluster"}
    assert lab.ping("us-west", address["eu-central"]) and lab.ping("eu-central", address["ap-south"])
    assert not lab.ping("us-west", address["ap-south"], attempts=1), "us-west and ap-south are not linked"
    # Nothing of the gateways' keys or configs on the machine that ran skyplan.
    assert not (workspace / ".skyplan/keys").exists() and not (workspace / "wireguard").exists()
