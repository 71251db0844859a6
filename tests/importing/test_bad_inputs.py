"""Files `skyplan import` refuses (tests/importing/bad_inputs.yaml): located errors, exit 1, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from skyplan_wireguard import keys, psk

CASES = YAML(typ="safe").load((Path(__file__).parent / "bad_inputs.yaml").read_text())


def _fill(text: str, private: dict[str, str], shared: dict[str, str]) -> str:
    def key(match: re.Match) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "psk":
            return shared.setdefault(name, psk.generate())
        made = private.setdefault(name, keys.generate())
        return made if kind == "private" else keys.public_key(made)

    return re.sub(r"\{(private|public|psk):([a-z0-9]+)\}", key, text)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_is_located_and_nothing_is_written(skyplan, workspace: Path, case: dict) -> None:
    private: dict[str, str] = {}
    shared: dict[str, str] = {}
    names = []
    for name, text in case["files"].items():
        (workspace / name).write_text(_fill(text, private, shared))
        names.append(name)
    before = sorted(p.name for p in workspace.iterdir())
    result = skyplan("import", *names, *case.get("args", []), "--auto-approve")
    assert result.exit_code == 1, result.output
    for expected in case["errors"]:
        assert expected in result.output
    assert "Traceback" not in result.output
    for secret in [*private.values(), *shared.values()]:
        assert secret not in result.output
    assert sorted(p.name for p in workspace.iterdir()) == before  # no links.yaml, no .skyplan
