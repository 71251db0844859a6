"""Secrets stay where they belong: keys in key files and own configs, passwords out of files."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.workspaces import BASIC


def every_file_skyplan_wrote(workspace) -> dict[str, str]:
    found = {}
    for path in workspace.rglob("*"):
        if path.is_file() and "keys" not in path.parts and path.suffix != ".conf":
            found[str(path.relative_to(workspace))] = path.read_text(errors="replace")
    return found


def test_no_private_key_outside_key_files_and_own_configs(basic, skyplan, skyctl):
    outputs = [skyplan("apply", "--auto-approve").output]
    (basic / "links.yaml").write_text(BASIC.replace("203.0.113.10", "203.0.113.11"))
    outputs += [skyplan("plan", "--out", "p.plan").output, skyplan("show", "p.plan", "--json").output]
    outputs += [skyplan("apply", "p.plan").output, skyctl("get", "link", "-o", "json").output]
    outputs += [skyctl("get", "cluster", "-o", "yaml").output, skyplan("state", "show", "cluster.us-west").output]
    keys = [p.read_text().strip() for p in (basic / ".skyplan/keys").iterdir()]
    files = every_file_skyplan_wrote(basic)
    assert ".skyplan/cache/config.json" in files and "p.plan" in files and ".skyplan/state.json" in files
    for key in keys:
        assert not any(key in text for text in outputs)
        assert not [name for name, text in files.items() if key in text]


@pytest.mark.postgres
def test_database_passwords_stay_out_of_plans_and_caches(workspace, skyplan, postgres_url):
    url = postgres_url + ("&" if "?" in postgres_url else "?") + "password=sekrit-value"
    (workspace / "links.yaml").write_text(BASIC + f"backend:\n  type: postgres\n  url: '{url}'\n  workspace: secrets-test\n")
    assert skyplan("plan", "--out", "p.plan").exit_code == 0, "trust authentication ignores the password"
    assert "sekrit-value" not in (workspace / "p.plan").read_text()
    assert json.loads((workspace / "p.plan").read_text())["backend"]["password_removed"] is True
    assert not (workspace / ".skyplan/cache").exists(), "a configuration with a password is not cached"
    applied = skyplan("apply", "p.plan")
    assert applied.exit_code == 0, applied.output
    assert "sekrit-value" not in applied.output


@pytest.mark.postgres
def test_a_saved_plan_against_postgresql_needs_its_configuration_unchanged(workspace, skyplan, postgres_url):
    config = BASIC + f"backend:\n  type: postgres\n  url: '{postgres_url}'\n  workspace: no-secret-{uuid.uuid4()}\n"
    (workspace / "links.yaml").write_text(config)
    skyplan("plan", "--out", "p.plan")
    (workspace / "links.yaml").write_text("version: [broken")
    refused = skyplan("apply", "p.plan")
    assert refused.exit_code == 1 and "links.yaml:1:" in refused.output
    (workspace / "links.yaml").write_text(config)
    applied = skyplan("apply", "p.plan")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete! Resources: 5 added" in applied.output
