"""The line between the core and its providers, checked on the source itself.

Providers import only `skyplan.sdk`; the core imports no provider and names no WireGuard field;
the provider interface and the resource type are defined once.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "skyplan"
PROVIDERS = ROOT / "providers"
EXAMPLE_PROVIDER = ROOT / "examples" / "provider-minimal"


def _imports(path: Path) -> list[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_providers_import_only_the_sdk_of_skyplan() -> None:
    found = {}
    for path in [*_sources(PROVIDERS), *_sources(EXAMPLE_PROVIDER)]:
        outside = [m for m in _imports(path) if m.split(".")[0] == "skyplan" and not (m == "skyplan.sdk" or m.startswith("skyplan.sdk."))]
        if outside:
            found[str(path.relative_to(ROOT))] = outside
    assert found == {}
    assert any("skyplan.sdk" in _imports(p) for p in _sources(PROVIDERS))  # the check looks at real imports


def test_no_core_module_imports_a_provider() -> None:
    found = {str(p.relative_to(ROOT)): m for p in _sources(CORE) for m in _imports(p) if m.split(".")[0] == "skyplan_wireguard"}
    assert found == {}


def test_no_core_module_names_a_wireguard_field() -> None:
    # public_key is WireGuard's; the core knows computed values only as the provider declares them.
    pattern = re.compile(r"public_key|private_key|wg-quick|\bwgsky0\b")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in _sources(CORE) for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    # Except where links.yaml (CONTRACT 2) and its SkyShift manifests declare an external peer's
    # key as a key of the file: declared there, its meaning is checked by the provider alone.
    declared = {"skyplan/config/models.py", "skyplan/config/manifests.py"}
    for where in list(found):
        path, n = where.rsplit(":", 1)
        if path in declared and re.match(r"\s+public_key: str \| None", (ROOT / path).read_text().splitlines()[int(n) - 1]):
            found.remove(where)
    assert found == []


def test_the_resource_type_and_the_provider_base_are_defined_once() -> None:
    definitions = {"ResourceType": [], "Provider": []}
    for path in _sources(CORE):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in definitions:
                        definitions[target.id].append(str(path.relative_to(ROOT)))
            elif isinstance(node, ast.ClassDef) and node.name in definitions:
                definitions[node.name].append(str(path.relative_to(ROOT)))
    assert definitions == {"ResourceType": ["skyplan/sdk/resources.py"], "Provider": ["skyplan/sdk/provider.py"]}


def test_the_core_reads_link_ends_through_the_typed_ends() -> None:
    pattern = re.compile(r"""attributes(\[|\.get\()["'](source|target)["']""")
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _sources(CORE)
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    # Only where LinkEnds are made from attributes.
    assert sorted({f.split(":")[0] for f in found}) == ["skyplan/sdk/resources.py", "skyplan/state/model.py"]
