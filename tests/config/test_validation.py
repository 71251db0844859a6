"""Every validation rule of links.yaml, as data: file in, located diagnostics out."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

CASES = YAML(typ="safe").load(Path(__file__).with_name("validation_cases.yaml").read_text())


def _diagnostics(output: str, label: str) -> list[str]:
    prefix = f"{label} links.yaml:"
    return [line[len(prefix):] for line in output.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_validation_case(case, workspace, skyplan):
    (workspace / "links.yaml").write_text(case["file"])
    result = skyplan("validate")
    errors = _diagnostics(result.output, "Error:")
    warnings = _diagnostics(result.output, "Warning:")
    assert errors == case["errors"], result.output
    if "warnings" in case:
        assert warnings == case["warnings"], result.output
    if case["errors"]:
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert "Success!" not in result.output
    else:
        assert result.exit_code == 0, result.output
        assert "Success! The configuration is valid." in result.output
    assert sorted(p.name for p in workspace.iterdir()) == ["links.yaml"], "validate wrote files"
