"""skyplan schema under the real ajv in strict mode, as editors' and CI's JSON Schema tooling runs it.

ajv (npm) is stricter than the jsonschema package: `--strict` refuses keywords that the schema
uses loosely, such as a `required` key that the same schema object does not define. The test
installs ajv-cli once into a cache folder with npm (the npm registry is one that CI reaches).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict
from ruamel.yaml import YAML

from skyplan.cli.skyplan_cmd import main
from skyplan.config.schema import links_schema, render_schema
from skyplan_wireguard.settings import WireGuardSettings

AJV_PACKAGES = ("ajv@8", "ajv-cli@5.0.0")
EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*/links.yaml"))


@pytest.fixture(scope="session")
def ajv() -> list[str]:
    cache = Path(os.environ.get("SKYPLAN_TEST_AJV_DIR") or Path.home() / ".cache" / "skyplan-tests" / "ajv")
    binary = cache / "node_modules" / ".bin" / "ajv"
    if not binary.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install ajv for this test (.ci/setup installs it)"
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--silent", *AJV_PACKAGES],
            check=True,
            timeout=600,
        )
    return [str(binary)]


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory) -> Path:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    path = tmp_path_factory.mktemp("schema") / "links.schema.json"
    path.write_text(result.stdout)
    return path


def run(ajv: list[str], command: str, *args: str) -> subprocess.CompletedProcess:
    options = ["--spec=draft2020", "--strict=true", "--all-errors"]
    return subprocess.run([*ajv, command, *options, *args], capture_output=True, text=True, timeout=120)


def test_compiles_in_strict_mode(ajv, schema_file):
    result = run(ajv, "compile", "-s", str(schema_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout


class _OtherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server: str


def test_compiles_in_strict_mode_with_several_providers(ajv, tmp_path):
    path = tmp_path / "several.schema.json"
    path.write_text(render_schema(links_schema({"wireguard": WireGuardSettings, "other": _OtherSettings})))
    result = run(ajv, "compile", "-s", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _documents(path: Path) -> list:
    return [doc for doc in YAML(typ="safe", pure=True).load_all(path.read_text()) if doc is not None]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_document_of_the_examples_is_valid(ajv, schema_file, tmp_path, example):
    data = []
    for index, document in enumerate(_documents(example)):
        data += ["-d", str(tmp_path / f"doc{index}.json")]
        (tmp_path / f"doc{index}.json").write_text(json.dumps(document))
    result = run(ajv, "validate", "-s", str(schema_file), *data)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("document", "keyword"),
    [
        ({"version": 1, "linsk": []}, "additionalProperties"),
        ({"version": 1, "provider": {"name": "wireguard", "interfce": "wg0"}}, "additionalProperties"),
        ({"version": 2}, "const"),
        ({"clusters": []}, "required"),
        ({"kind": "Pod", "metadata": {"name": "p"}}, "enum"),
        ({"kind": "Link", "metadata": {"name": "l"}, "spec": {"source_cluster": "a"}}, "required"),
    ],
)
def test_a_wrong_document_is_rejected_and_says_why(ajv, schema_file, tmp_path, document, keyword):
    (tmp_path / "doc.json").write_text(json.dumps(document))
    result = run(ajv, "validate", "-s", str(schema_file), "-d", str(tmp_path / "doc.json"), "--errors=json")
    assert result.returncode == 1
    verdict, report = (result.stderr + result.stdout).split("\n", 1)
    assert verdict.endswith("doc.json invalid")
    assert keyword in {error["keyword"] for error in json.loads(report)}
