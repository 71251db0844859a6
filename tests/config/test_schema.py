"""skyplan schema: a valid draft 2020-12 JSON Schema that accepts links.yaml and flags unknown keys."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict
from ruamel.yaml import YAML

from skyplan.cli.skyplan_cmd import main
from skyplan.config.schema import SCHEMA_DIALECT, installed_settings_models, links_schema
from skyplan_wireguard.settings import WireGuardSettings

EXAMPLE = Path(__file__).parents[2] / "examples" / "basic" / "links.yaml"


@pytest.fixture(scope="module")
def schema() -> dict:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def validator(schema) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def documents(text: str) -> list:
    return [doc for doc in YAML(typ="safe", pure=True).load_all(text) if doc is not None]


def errors(validator, text: str) -> list[str]:
    return [error.message for doc in documents(text) for error in validator.iter_errors(doc)]


def test_is_a_valid_draft_2020_12_schema(schema):
    assert schema["$schema"] == SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] and schema["title"] and schema["description"]


def test_output_is_stable_sorted_and_indented():
    first = CliRunner().invoke(main, ["schema"]).stdout
    second = CliRunner().invoke(main, ["schema"]).stdout
    assert first == second
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True) + "\n"


def test_every_object_is_closed_and_described(schema):
    config = schema["$defs"]["Config"]
    assert config["additionalProperties"] is False
    assert set(config["properties"]) == {"version", "provider", "backend", "clusters", "links", "meshes", "moved"}
    for name in ("ClusterSpec", "LinkSpec", "MeshSpec", "MovedSpec", "BackendSpec", "ProviderBlock", "LinkManifest", "Metadata"):
        assert schema["$defs"][name]["additionalProperties"] is False, name
    for key, value in config["properties"].items():
        assert value.get("description"), key


def test_the_provider_block_holds_the_installed_providers_settings(schema):
    provider = schema["$defs"]["ProviderBlock"]
    assert provider["properties"]["name"]["enum"] == ["wireguard"]
    assert set(provider["properties"]) == {"name", *WireGuardSettings.model_fields}
    assert provider["properties"]["interface"]["pattern"]


def test_the_bundled_example_validates(validator):
    assert errors(validator, EXAMPLE.read_text()) == []


def test_seed_names_and_manifests_validate(validator):
    text = """\
version: 1
clusters:
  - {name: sourceCluster, endpoint: "203.0.113.10:51820", subnets: [10.10.0.0/16], listen_port: 51821}
  - {name: b, endpoint: "[2001:db8::1]:51820"}
links:
  - {name: myLink, source: sourceCluster, target: b}
meshes:
  - {name: m, clusters: [sourceCluster, b], topology: hub, hub: b}
backend: {type: postgres, url: "postgresql://db/skyplan"}
---
kind: Link
apiVersion: skyshift/v1
metadata: {name: myLink2}
spec: {source_cluster: sourceCluster, target_cluster: b}
---
kind: Cluster
metadata: {name: c}
spec: {endpoint: "192.0.2.1:51820", subnets: [10.30.0.0/16]}
"""
    assert errors(validator, text) == []


def test_the_topology_keys_validate(validator):
    text = """\
version: 1
provider: {preshared_keys: true, persistent_keepalive: 25, hook_timeout: 60s}
clusters:
  - {name: hub, endpoint: "192.0.2.1:51820", subnets: [10.0.0.0/16], mtu: 1380, persistent_keepalive: 15, address: 100.96.0.7}
  - {name: home, subnets: [10.1.0.0/16], listen_port: 51821}
  - {name: partner, endpoint: "198.51.100.7:51820", public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="}
links:
  - {name: hub-partner, source: hub, target: partner, preshared_key: true}
meshes:
  - {name: stores, clusters: [hub, home], topology: hub, hub: hub, transit: true}
---
kind: Cluster
metadata: {name: laptop}
spec: {subnets: [10.5.0.0/16], public_key: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", address: 100.96.0.9}
"""
    assert errors(validator, text) == []


@pytest.mark.parametrize(
    ("text", "unexpected"),
    [
        ("version: 1\nlinsk: []\n", "linsk"),
        ("version: 1\nprovider: {name: wireguard, interfce: wg0}\n", "interfce"),
        ("version: 1\nbackend: {type: local, path: x}\n", "path"),
        ("version: 1\nclusters: [{name: a, endpoint: 'x:1', subnet: []}]\n", "subnet"),
        ("version: 1\nlinks: [{name: l, source: a, target: b, bidirectional: true}]\n", "bidirectional"),
        ("version: 1\nmeshes: [{name: m, clusters: [a, b], topolgy: full}]\n", "topolgy"),
        ("version: 1\nmoved: [{from: cluster.a, to: cluster.b, form: cluster.c}]\n", "form"),
        ("kind: Link\nmetadata: {name: l}\nspec: {source_cluster: a, target_cluster: b, sourceCluster: a}\n", "sourceCluster"),
    ],
)
def test_a_typo_is_rejected(validator, text, unexpected):
    assert any(f"'{unexpected}' was unexpected" in message for message in errors(validator, text))


@pytest.mark.parametrize(
    "text",
    [
        "clusters: []\n",  # version is required
        "version: 2\n",
        "version: 1\nprovider: {name: openvpn}\n",
        "version: 1\nprovider: {interface: this-name-is-far-too-long}\n",
        "version: 1\nclusters: [{name: -bad, endpoint: 'x:1'}]\n",
        "version: 1\nclusters: [{name: a, endpoint: 'x:1', listen_port: 70000}]\n",
        "version: 1\nmeshes: [{name: m, clusters: [a, b], topology: star}]\n",
        "version: 1\nmeshes: [{name: m, clusters: [a, b], topology: hub, hub: a, transit: 'yes'}]\n",
        "version: 1\nclusters: [{name: a, mtu: 100}]\n",
        "version: 1\nclusters: [{name: a, persistent_keepalive: -1}]\n",
        "version: 1\nclusters: [{name: a, public_key: 42}]\n",
        "version: 1\nlinks: [{name: l, source: a, target: b, preshared_key: 'true'}]\n",
        "version: 1\nprovider: {preshared_keys: 1}\n",
        "version: 1\nmoved: [{from: a, to: cluster.b}]\n",  # an address, not a bare name
        "version: 1\nmoved: [{from: cluster.a}]\n",
        "kind: Pod\nmetadata: {name: p}\n",
    ],
)
def test_wrong_values_are_rejected(validator, text):
    assert errors(validator, text)


class _OtherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server: str


def test_with_several_providers_each_name_picks_its_settings():
    validator = jsonschema.Draft202012Validator(links_schema({"wireguard": WireGuardSettings, "other": _OtherSettings}))
    jsonschema.Draft202012Validator.check_schema(validator.schema)
    assert errors(validator, "version: 1\nprovider: {interface: wg0}\n") == []  # no name: wireguard
    assert errors(validator, "version: 1\nprovider: {name: other, server: s}\n") == []
    assert any("'server' was unexpected" in m for m in errors(validator, "version: 1\nprovider: {interface: wg0, server: s}\n"))
    assert any("'interface' was unexpected" in m for m in errors(validator, "version: 1\nprovider: {name: other, server: s, interface: x}\n"))
    assert errors(validator, "version: 1\nprovider: {name: other}\n")  # server is required
    assert errors(validator, "version: 1\nprovider: {name: third}\n")


def test_installed_providers_are_found():
    models, problems = installed_settings_models()
    assert models == {"wireguard": WireGuardSettings}
    assert problems == []
