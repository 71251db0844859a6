"""The JSON Schema of links.yaml (draft 2020-12), built from the pydantic models, for editors and CI.

A JSON Schema describes one document, and editors apply it to every document of a YAML file. So
the schema accepts either kind of document that links.yaml may hold: the skyplan document (no
`kind` key) or a SkyShift manifest (`kind: Link` or `kind: Cluster`), chosen by `kind`.

The `provider` block is where a schema has to know the plugins: its keys are the settings of the
provider that `name` picks. With one provider installed (the usual case) the block is that
provider's settings plus `name`, which editors complete and check best. With several, each
provider's settings apply when `name` picks it (if/then), each closed to unknown keys.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from skyplan.sdk.registry import DEFAULT_PROVIDER

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# A name, not a place to fetch from: every reference in the schema is local (#/$defs/...).
SCHEMA_ID = "urn:skyplan:schema:links.yaml:v1"

_TITLE = "skyplan links.yaml"
_DESCRIPTION = (
    "Desired WireGuard links between clusters, for `skyplan plan` and `skyplan apply`. "
    "A document is either the skyplan document (version, provider, backend, clusters, links, meshes, moved) "
    "or a SkyShift manifest (kind: Link or kind: Cluster)."
)
_CONFIG_DESCRIPTION = "The skyplan document: clusters, the links between them, and how to apply them."
_PROVIDER_DESCRIPTION = (
    "The provider that turns links into tunnels: `name` picks the plugin (entry point group "
    "skyplan.providers), the other keys are that provider's settings."
)


def installed_settings_models() -> tuple[dict[str, type[BaseModel]], list[str]]:
    """The settings model of every installed provider, and a note for each that failed to load."""
    from skyplan.errors import ProviderError
    from skyplan.sdk import installed_providers, provider_class

    models: dict[str, type[BaseModel]] = {}
    problems: list[str] = []
    for name in sorted(installed_providers()):
        try:
            models[name] = provider_class(name).settings_model
        except ProviderError as exc:
            problems.append(f"{exc}; its settings are not in the schema")
    return models, problems


def links_schema(providers: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """The schema of a links.yaml document, given each installed provider's settings model."""
    from pydantic.json_schema import models_json_schema

    from skyplan.config.manifests import ClusterManifest, LinkManifest, Metadata
    from skyplan.config.models import ADDRESS_PATTERN, NAME_PATTERN, ClusterSpec, Config, LinkSpec, MeshSpec, MovedSpec, ProviderBlock

    named = (ClusterSpec, LinkSpec, MeshSpec, Metadata)
    models = [Config, LinkManifest, ClusterManifest, ProviderBlock, MovedSpec, *named, *providers.values()]
    refs, top = models_json_schema([(model, "validation") for model in models], ref_template="#/$defs/{model}")
    defs: dict[str, Any] = top["$defs"]

    def name_of(model: type[BaseModel]) -> str:
        return refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]

    for model in named:  # the loader checks names in its rules; editors can check them as you type
        defs[name_of(model)]["properties"]["name"]["pattern"] = NAME_PATTERN
    for key in ("from", "to"):
        defs[name_of(MovedSpec)]["properties"][key]["pattern"] = ADDRESS_PATTERN
    defs[name_of(Config)]["description"] = _CONFIG_DESCRIPTION

    settings = {name: name_of(model) for name, model in providers.items()}
    defs[name_of(ProviderBlock)] = _provider_block(defs, settings)

    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": _TITLE,
        "description": _DESCRIPTION,
        "type": "object",
        # `kind` is named in `properties` too: a strict validator (ajv --strict) refuses a
        # `required` key that the same schema does not define.
        "if": {"properties": {"kind": True}, "required": ["kind"]},
        "then": {
            "properties": {"kind": {"enum": ["Cluster", "Link"], "description": "SkyShift manifest kind."}},
            "allOf": [
                _when("kind", "Link", name_of(LinkManifest), required=True),
                _when("kind", "Cluster", name_of(ClusterManifest), required=True),
            ],
        },
        "else": {"$ref": f"#/$defs/{name_of(Config)}"},
        "$defs": defs,
    }


def render_schema(schema: Mapping[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, ASCII, one final newline."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _provider_block(defs: dict[str, Any], settings: Mapping[str, str]) -> dict[str, Any]:
    names = sorted(settings)
    name_schema: dict[str, Any] = {
        "type": "string",
        "enum": names,
        "description": f"The provider plugin. Installed: {', '.join(names) or 'none'}.",
    }
    if DEFAULT_PROVIDER in settings:
        name_schema["default"] = DEFAULT_PROVIDER
    if len(names) == 1:
        # One provider: its settings and `name` in one closed object, the best case for editors.
        (only,) = names
        block = _with_name(defs.pop(settings[only]), name_schema)
        block["title"] = "Provider"
        block["description"] = _PROVIDER_DESCRIPTION
        return block
    for provider, definition in settings.items():
        defs[definition] = _with_name(defs[definition], {"const": provider})
    return {
        "type": "object",
        "title": "Provider",
        "description": _PROVIDER_DESCRIPTION,
        "properties": {"name": name_schema},
        # Without `name` the default provider is meant, so only the others need it spelled out.
        "allOf": [_when("name", p, settings[p], required=p != DEFAULT_PROVIDER) for p in names],
    }


def _with_name(settings_schema: Mapping[str, Any], name_schema: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(settings_schema))
    merged["properties"] = {"name": dict(name_schema), **merged.get("properties", {})}
    merged.setdefault("type", "object")
    return merged


def _when(key: str, value: str, definition: str, *, required: bool) -> dict[str, Any]:
    condition: dict[str, Any] = {"properties": {key: {"const": value}}}
    if required:
        condition["required"] = [key]
    return {"if": condition, "then": {"$ref": f"#/$defs/{definition}"}}
