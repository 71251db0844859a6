"""Saved plans edited between plan and apply, as whoever handles the file could: all refused.

Each test makes an honest plan, tampers with the file the way an attacker would, and asserts
what must not happen: a hook run, a file written or deleted outside the workspace, the state or
the configs changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.workspaces import BASIC

MOVED = BASIC.replace("203.0.113.10", "203.0.113.11")


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outside")


def snapshot(workspace: Path) -> dict[str, bytes]:
    """Every file under the workspace except the plan files and the cache."""
    return {
        p.relative_to(workspace).as_posix(): p.read_bytes()
        for p in sorted(workspace.rglob("*"))
        if p.is_file() and p.suffix != ".plan" and ".skyplan/cache" not in p.as_posix()
    }


def tamper(path: Path, edit) -> None:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document, indent=1))


def change_of(document: dict, address: str) -> dict:
    return next(c for c in document["plan"]["changes"] if c["address"] == address)


def _output_dir(outside: Path):
    def edit(document):
        document["provider_settings"]["output_dir"] = str(outside)
        for change in document["plan"]["changes"]:
            if change["type"] == "cluster" and change["after"]:
                change["after"]["output_dir"] = str(outside)
    return edit


def _hook(outside: Path):
    def edit(document):
        document["provider_settings"]["on_change"] = ["sh", "-c", f"touch {outside}/marker"]
    return edit


def _endpoint(outside: Path):
    def edit(document):
        change_of(document, "cluster.us-west")["after"]["endpoint"] = "198.18.0.66:51820"
    return edit


def _listen_port(outside: Path):
    def edit(document):
        change_of(document, "cluster.eu-central")["after"]["listen_port"] = 22
    return edit


def _replace(outside: Path):
    # A replace makes a new key for the cluster and rewrites every peer.
    def edit(document):
        change_of(document, "cluster.us-west")["action"] = "-/+"
    return edit


def _delete(outside: Path):
    def edit(document):
        change = change_of(document, "link.us-ap")
        change.update(action="-", after=None)
    return edit


def _destroy_everything(outside: Path):
    def edit(document):
        document["plan"]["mode"] = "destroy"
        for change in document["plan"]["changes"]:
            change.update(action="-", after=None)
    return edit


def _hostile_name(outside: Path):
    def edit(document):
        change = json.loads(json.dumps(change_of(document, "cluster.ap-south")))
        name = "../" * 40 + str(outside)[1:] + "/victim"
        change.update(address=f"cluster.{name}", name=name, action="-", after=None)
        document["plan"]["changes"].append(change)
    return edit


def _digest(outside: Path):
    # Tampering with the recorded digest only makes the plan disagree with the file.
    def edit(document):
        document["config_digest"] = "sha256:" + "0" * 64
    return edit


TAMPERINGS = {
    "output_dir moved outside": _output_dir,
    "hook added": _hook,
    "endpoint changed": _endpoint,
    "listen_port changed": _listen_port,
    "update turned into replace": _replace,
    "no-op turned into delete": _delete,
    "turned into a destroy": _destroy_everything,
    "delete of a climbing name added": _hostile_name,
    "digest changed": _digest,
}


@pytest.mark.parametrize("how", sorted(TAMPERINGS))
def test_a_tampered_saved_plan_is_refused(basic, skyplan, outside, how):
    assert skyplan("apply", "--auto-approve").exit_code == 0
    (basic / "links.yaml").write_text(MOVED)
    assert skyplan("plan", "--out", "p.plan").exit_code == 0
    victim = outside / "victim" / "wgsky0.conf"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    tamper(basic / "p.plan", TAMPERINGS[how](outside))
    before = snapshot(basic)

    result = skyplan("apply", "p.plan")

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    if how == "turned into a destroy":
        # The command line did not ask for a destroy, so the plan's claim to be one is refused.
        assert result.output.startswith("Error: Saved plan p.plan says it was made with --destroy, but this command gives none"), result.output
    elif how == "delete of a climbing name added":
        # No configuration could name it: the file is refused as soon as it is read.
        assert result.output.startswith("Error: Saved plan p.plan was altered: plan.changes["), result.output
    else:
        assert result.output.startswith("Error: Saved plan p.plan was altered or no longer matches links.yaml"), result.output
    assert "Nothing was done" in result.output
    assert snapshot(basic) == before, "the workspace changed"
    assert not (outside / "marker").exists(), "the added hook ran"
    assert sorted(p.name for p in outside.rglob("*")) == ["victim", "wgsky0.conf"] and victim.read_text() == "precious\n"


def test_show_of_an_edited_plan_prints_no_line_the_plan_does_not_have(basic, skyplan):
    # Reviewers run `show` on a plan file handed to them: reasons, notes and attribute names
    # edited to hold newlines and terminal escapes must not forge a summary or hide what the
    # plan does; names no configuration could hold make the file refused outright.
    assert skyplan("plan", "--out", "p.plan").exit_code == 0
    honest = skyplan("show", "p.plan").output
    forged = "\n\x1b[2K\x1b[32mPlan: 0 to add, 0 to change, 0 to destroy.\x1b[0m\n"

    def edit_texts(document):
        change = change_of(document, "cluster.us-west")
        change["reason"] = forged
        change["after"][f"mtu{forged}"] = 1
        document["plan"]["notes"] = [forged]

    tamper(basic / "p.plan", edit_texts)
    shown = skyplan("show", "p.plan")
    assert shown.exit_code == 0, shown.output
    assert "\x1b" not in shown.output
    summaries = [line for line in shown.output.splitlines() if line.startswith("Plan: ")]
    assert summaries == [line for line in honest.splitlines() if line.startswith("Plan: ")]
    assert not any(line.lstrip(" #(+").startswith(("Plan: 0", "\x1b")) for line in shown.output.splitlines())
    # Shown, escaped, where the plan holds it: in the reason, the block, the note.
    assert shown.output.count("\\n\\x1b[2K\\x1b[32mPlan: 0 to add") == 3

    def edit_names(document):
        change = change_of(document, "cluster.us-west")
        change["name"] += forged
        change["address"] += forged

    tamper(basic / "p.plan", edit_names)
    for command in (["show", "p.plan"], ["show", "p.plan", "--json"], ["graph", "p.plan"]):
        refused = skyplan(*command)
        assert refused.exit_code == 1
        assert refused.output.startswith("Error: Saved plan p.plan was altered: plan.changes[")
        assert "\x1b" not in refused.output and "Plan: 0" not in refused.output


def test_the_untampered_plan_still_applies(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / "links.yaml").write_text(MOVED)
    skyplan("plan", "--out", "p.plan")
    applied = skyplan("apply", "p.plan")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete! Resources: 0 added, 1 changed, 0 destroyed." in applied.output


def test_a_plan_pointing_at_another_configuration_is_refused(basic, skyplan, outside):
    """The configuration comes from the command line: a plan cannot swap in one of its choosing."""
    hooked = BASIC.replace("  address_pool:", f"  on_change: [sh, -c, 'touch {outside}/marker']\n  address_pool:")
    (basic / "tests-fixture.yaml").write_text(hooked)  # any other configuration in the repository
    assert skyplan("plan", "tests-fixture.yaml", "--out", "p.plan").exit_code == 0
    before = snapshot(basic)
    refused = skyplan("apply", "p.plan")
    assert refused.exit_code == 1
    assert refused.output == (
        f"Error: Saved plan p.plan was made from {basic.resolve() / 'tests-fixture.yaml'}, not links.yaml; "
        "name the configuration it was made from with --config\n"
    )
    assert snapshot(basic) == before and not (outside / "marker").exists()
    # Named on purpose, it is that configuration that decides, and the plan applies.
    assert skyplan("apply", "p.plan", "--config", "tests-fixture.yaml").exit_code == 0
    assert (outside / "marker").exists()


def test_a_saved_plan_of_a_template_needs_its_variables_again(workspace, skyplan):
    (workspace / "links.yaml.j2").write_text(
        "version: 1\nclusters:\n{% for n in names.split(',') %}"
        "  - {name: '{{ n }}', endpoint: '192.0.2.{{ loop.index }}:51820'}\n{% endfor %}"
        "links:\n  - {name: l, source: a, target: b}\n"
    )
    planned = skyplan("plan", "links.yaml.j2", "--var", "names=a,b", "--out", "p.plan")
    assert "run: skyplan apply p.plan --config links.yaml.j2 (with the same --var and --var-file)" in planned.output
    other = skyplan("apply", "p.plan", "--config", "links.yaml.j2", "--var", "names=a,b,c")
    assert other.exit_code == 1 and "altered or no longer matches links.yaml.j2" in other.output
    assert not (workspace / ".skyplan/state.json").exists()
    same = skyplan("apply", "p.plan", "--config", "links.yaml.j2", "--var", "names=a,b")
    assert same.exit_code == 0, same.output
    assert "Apply complete! Resources: 3 added" in same.output


def test_a_plan_made_without_refresh_is_planned_again_without_it(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / "wireguard/us-west/wgsky0.conf").write_text("# edited by hand\n")
    (basic / "links.yaml").write_text(MOVED)
    skyplan("plan", "--no-refresh", "--out", "p.plan")
    applied = skyplan("apply", "p.plan")
    assert applied.exit_code == 0, applied.output


def test_config_is_refused_for_a_configuration_file(basic, skyplan):
    result = skyplan("apply", "--config", "other.yaml", "--auto-approve")
    assert result.exit_code == 1 and "--config names the configuration of a saved plan" in result.output


# -- plan --out never overwrites what is not a plan -------------------------------------------------


def test_plan_out_onto_the_configuration_is_refused(basic, skyplan):
    result = skyplan("plan", "--out", "links.yaml")
    assert result.exit_code == 1
    assert result.output == (
        "Error: refusing to write the plan to links.yaml: it is the configuration the plan is made from; "
        "choose another file\n"
    )
    assert (basic / "links.yaml").read_text() == BASIC
    assert sorted(p.name for p in basic.iterdir()) == ["links.yaml"], "nothing else was written either"


def test_plan_out_onto_the_configuration_by_another_path_is_refused(basic, skyplan):
    (basic / "sub").mkdir()
    result = skyplan("plan", "--out", "sub/../links.yaml")
    assert result.exit_code == 1 and "it is the configuration" in result.output
    assert (basic / "links.yaml").read_text() == BASIC


def test_plan_out_onto_a_variable_file_is_refused(workspace, skyplan):
    (workspace / "links.yaml.j2").write_text("version: 1\n# {{ x }}\n")
    (workspace / "vars.yaml").write_text("x: 1\n")
    result = skyplan("plan", "links.yaml.j2", "--var-file", "vars.yaml", "--out", "vars.yaml")
    assert result.exit_code == 1 and "it is a variable file the plan is made from" in result.output
    assert (workspace / "vars.yaml").read_text() == "x: 1\n"


def test_plan_out_onto_another_file_is_refused(basic, skyplan):
    (basic / "README.md").write_text("# notes\n")
    result = skyplan("plan", "--out", "README.md")
    assert result.exit_code == 1
    assert "refusing to write the plan to README.md: the file exists and is not a skyplan plan file" in result.output
    assert (basic / "README.md").read_text() == "# notes\n"


def test_plan_out_replaces_an_earlier_plan(basic, skyplan):
    assert skyplan("plan", "--out", "p.plan").exit_code == 0
    (basic / "links.yaml").write_text(MOVED)
    assert skyplan("plan", "--out", "p.plan").exit_code == 0
    assert skyplan("apply", "p.plan").exit_code == 0


def test_changes_spliced_in_from_a_replace_plan_are_refused(basic, skyplan):
    # An attacker who can write the plan file copies the changes of a `--replace` plan into an
    # innocent one: applying it would rotate a key that nobody asked to rotate.
    import json

    assert skyplan("apply", "--auto-approve").exit_code == 0
    assert skyplan("plan", "--out", "innocent.plan").exit_code == 0
    assert skyplan("plan", "--replace", "cluster.us-west", "--out", "rotate.plan").exit_code == 0
    innocent = json.loads((basic / "innocent.plan").read_text())
    innocent["plan"]["changes"] = json.loads((basic / "rotate.plan").read_text())["plan"]["changes"]
    (basic / "innocent.plan").write_text(json.dumps(innocent))
    before = snapshot(basic)

    result = skyplan("apply", "innocent.plan")
    assert result.exit_code == 1
    assert "says it was made with --replace cluster.us-west, but this command gives none of them" in result.output
    assert snapshot(basic) == before
    # The honest plan is applied when its choice is said again, and only then.
    assert skyplan("apply", "--replace", "cluster.us-west", "rotate.plan").exit_code == 0
