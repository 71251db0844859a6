"""`skyplan graph`: golden pictures of a configuration and of a plan, in DOT and Mermaid."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from skyplan.render.graph import Item, _mermaid_id, build_picture

GOLDEN = Path(__file__).with_name("graph_golden")
# Run with SKYPLAN_UPDATE_GOLDEN=1 to rewrite the files after a deliberate change; review the diff.
UPDATE = os.environ.get("SKYPLAN_UPDATE_GOLDEN") == "1"

MESHES = """\
version: 1
provider:
  name: wireguard
  address_pool: 100.96.0.0/16
clusters:
  - {name: a, endpoint: "192.0.2.1:51820", subnets: [10.1.0.0/16]}
  - {name: b, endpoint: "192.0.2.2:51820", subnets: [10.2.0.0/16]}
  - {name: c, endpoint: "192.0.2.3:51820", subnets: [10.3.0.0/16]}
  - {name: hub, endpoint: "192.0.2.10:51820", subnets: [10.10.0.0/16]}
  - {name: s1, endpoint: "192.0.2.11:51820", subnets: [10.11.0.0/16]}
  - {name: s2, endpoint: "192.0.2.12:51820", subnets: [10.12.0.0/16]}
links:
  - {name: a-hub, source: a, target: hub}
meshes:
  - {name: core, clusters: [a, b, c]}
  - {name: stores, clusters: [hub, s1, s2], topology: hub, hub: hub}
"""

# d joins the core mesh, s1 moves, s2 leaves, hub's key is lost (a replace), a-hub goes.
CHANGED = (
    MESHES.replace('  - {name: s2, endpoint: "192.0.2.12:51820", subnets: [10.12.0.0/16]}\n', '  - {name: d, endpoint: "192.0.2.4:51820", subnets: [10.4.0.0/16]}\n')
    .replace("192.0.2.11:51820", "192.0.2.111:51820")
    .replace("clusters: [a, b, c]", "clusters: [a, b, c, d]")
    .replace("clusters: [hub, s1, s2]", "clusters: [hub, s1]")
    .replace("  - {name: a-hub, source: a, target: hub}\n", "  - {name: a-s1, source: a, target: s1}\n")
)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden file"
    if name.endswith(".dot") and shutil.which("dot"):
        done = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert "<svg" in done.stdout


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_configuration_picture(basic, skyplan, fmt):
    result = skyplan("graph", "--format", fmt)
    assert result.exit_code == 0, result.output
    check_golden(f"basic.{'dot' if fmt == 'dot' else 'mmd'}", result.output)
    assert not (basic / ".skyplan").exists()  # reads the file, not the state: nothing written


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_meshes_collapse_and_hubs_show(workspace, skyplan, fmt):
    (workspace / "links.yaml").write_text(MESHES)
    result = skyplan("graph", "--format", fmt)
    check_golden(f"meshes.{'dot' if fmt == 'dot' else 'mmd'}", result.output)


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_plan_picture_colours_each_change(workspace, skyplan, fmt):
    (workspace / "links.yaml").write_text(MESHES)
    assert skyplan("apply", "--auto-approve").exit_code == 0
    (workspace / "links.yaml").write_text(CHANGED)
    (workspace / ".skyplan/keys/hub.key").unlink()
    assert skyplan("plan", "--out", "links.plan").exit_code == 0
    result = skyplan("graph", "links.plan", "--format", fmt)
    assert result.exit_code == 0, result.output
    check_golden(f"plan.{'dot' if fmt == 'dot' else 'mmd'}", result.output)
    assert skyplan("graph", "links.plan", "--format", fmt).output == result.output  # stable


def test_no_change_plan_is_drawn_plain(basic, skyplan):
    skyplan("apply", "--auto-approve")
    skyplan("plan", "--out", "links.plan")
    text = skyplan("graph", "links.plan", "--format", "mermaid").output
    assert "No changes" in text and "classDef" not in text and "linkStyle" not in text


def _link(name: str, a: str, b: str, action: str | None = None) -> Item:
    return Item("link", name, {"source": a, "target": b}, action)


def test_mesh_with_mixed_changes_is_drawn_link_by_link():
    # b-c changes while no member joins or leaves: one mesh node would hide that change.
    items = [_link("m.a.b", "a", "b"), _link("m.a.c", "a", "c"), _link("m.b.c", "b", "c", "update")]
    picture = build_picture(items)
    assert picture.meshes == {}
    assert [(a, b, action) for a, b, action, _ in picture.edges] == [("a", "b", None), ("a", "c", None), ("b", "c", "update")]


def test_member_leaving_a_mesh_is_its_edge_in_red():
    items = [_link(f"m.{a}.{b}", a, b, "delete" if "d" in (a, b) else None) for a, b in
             [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]]
    picture = build_picture(items)
    assert picture.meshes == {"m": [("a", None), ("b", None), ("c", None), ("d", "delete")]}
    assert picture.edges == []


def test_links_sharing_a_pair_are_one_edge_and_ids_never_collide():
    picture = build_picture([_link("x", "a", "b"), _link("y", "b", "a", "create")])
    assert picture.edges == [("a", "b", "update", 2)]
    names = ["a-b", "a_b", "a_2db", "a.b", "a__b"]
    assert len({_mermaid_id("c_", n) for n in names}) == len(names)
    assert all(_mermaid_id("c_", n).replace("_", "").isalnum() for n in names)


def test_missing_file_is_one_clear_line(workspace, skyplan):
    result = skyplan("graph", "nowhere.yaml")
    assert result.exit_code == 1
    assert result.output == "Error: nowhere.yaml: no such file\n"


def test_names_from_an_edited_plan_are_refused_before_they_are_drawn(basic, skyplan):
    import json

    skyplan("plan", "--out", "links.plan")
    hostile = 'x"]\n  click c_x href "javascript:alert(1)"\n  y["'
    document = json.loads((basic / "links.plan").read_text())
    for how in ("name only", "name and address"):
        edited = json.loads(json.dumps(document))
        for change in edited["plan"]["changes"]:
            if change["address"] == "cluster.us-west":
                change["name"] = hostile
                if how == "name and address":
                    change["address"] = f"cluster.{hostile}"
        (basic / "edited.plan").write_text(json.dumps(edited))
        for fmt in ("mermaid", "dot"):
            result = skyplan("graph", "edited.plan", "--format", fmt)
            assert result.exit_code == 1, (how, result.output)
            assert "Saved plan edited.plan was altered" in result.output
            assert "click" not in result.output and "\n  " not in result.output
