"""skyplan/operations.py: whole commands, driven through a Console instead of a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from skyplan.errors import SkyplanError


@dataclass
class FakeConsole:
    """A person at a terminal, as a test plays them: what was shown, what was asked."""

    answer: bool | None = None  # None: nobody there to ask
    shown: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    def console(self):
        from skyplan.operations import Console
        from skyplan.render.style import PLAIN

        def ask(question: str, description: str) -> bool:
            self.asked.append(question)
            return bool(self.answer)

        return Console(show=self.shown.append, style=PLAIN, can_ask=lambda: self.answer is not None, ask=ask)

    @property
    def text(self) -> str:
        return "".join(self.shown)


def _source(path):
    from skyplan.operations import ConfigSource

    return ConfigSource(str(path / "links.yaml"))


def test_apply_asks_and_a_no_changes_nothing(basic):
    from skyplan import operations

    person = FakeConsole(answer=False)
    with pytest.raises(SkyplanError, match="^Apply cancelled.$"):
        operations.apply(_source(basic), operations.Selection(), person.console())
    assert person.asked == ["Do you want to perform these actions?"]
    assert "Plan: 5 to add, 0 to change, 0 to destroy." in person.text
    assert not (basic / ".skyplan/state.json").exists() and not (basic / "wireguard").exists()


def test_apply_without_anyone_to_ask_refuses(basic):
    from skyplan import operations

    person = FakeConsole(answer=None)
    with pytest.raises(SkyplanError, match="^apply needs confirmation, but input is not a terminal"):
        operations.apply(_source(basic), operations.Selection(), person.console())
    assert person.asked == []
    assert not (basic / ".skyplan/state.json").exists()


def test_apply_then_destroy_through_the_console(basic):
    from skyplan import operations

    person = FakeConsole(answer=True)
    assert operations.apply(_source(basic), operations.Selection(), person.console()) is True
    assert "Apply complete! Resources: 5 added, 0 changed, 0 destroyed." in person.text
    assert (basic / "wireguard/us-west/wgsky0.conf").exists()

    again = FakeConsole(answer=True)
    assert operations.apply(_source(basic), operations.Selection(), again.console()) is False
    assert again.asked == [], "nothing to do, yet a question was asked"

    refused = FakeConsole(answer=False)
    with pytest.raises(SkyplanError, match="^Destroy cancelled.$"):
        operations.apply(_source(basic), operations.Selection("destroy"), refused.console())
    assert refused.asked == ["Do you really want to destroy all resources?"]
    assert (basic / "wireguard/us-west/wgsky0.conf").exists()

    destroyed = FakeConsole(answer=True)
    assert operations.apply(_source(basic), operations.Selection("destroy"), destroyed.console()) is True
    assert "Destroy complete! Resources: 5 destroyed." in destroyed.text
    state = json.loads((basic / ".skyplan/state.json").read_text())
    assert state["resources"] == []


def test_replace_in_a_destroy_is_refused_before_the_workspace_is_opened(workspace):
    from skyplan import operations

    (workspace / "links.yaml").write_text("this is: [not valid")  # would fail if it were read
    with pytest.raises(SkyplanError, match="--replace is allowed only in a normal plan"):
        operations.plan(_source(workspace), operations.Selection("destroy", replace=("cluster.a",)), FakeConsole().console())
    assert not (workspace / ".skyplan").exists()


def test_plan_saves_and_apply_saved_applies_exactly_it(basic):
    from skyplan import operations

    planned = operations.plan(_source(basic), operations.Selection(), FakeConsole().console(), out=str(basic / "p.plan"))
    assert planned.has_changes and (basic / "p.plan").exists()
    person = FakeConsole()
    assert operations.apply_saved(str(basic / "p.plan"), _source(basic), operations.Selection(), person.console()) is True
    assert person.asked == [] and "Apply complete! Resources: 5 added" in person.text


def test_skyctl_verbs_through_operations(workspace):
    from skyplan import operations

    where = operations.SkyctlSource(None)
    person = FakeConsole()
    operations.create_cluster(where, "a", "192.0.2.1:51820", ["10.1.0.0/16"], None, person.console())
    operations.create_cluster(where, "b", "192.0.2.2:51820", ["10.2.0.0/16"], None, person.console())
    operations.create_link(where, "a-b", ("a", "b"), person.console())
    assert person.text.splitlines()[-1] == "Created link a-b."
    listed = FakeConsole()
    operations.get(where, "link", None, "table", listed.console())
    assert listed.text.splitlines()[0].split() == ["NAME", "SOURCE", "TARGET", "STATUS", "AGE"]
    assert listed.text.splitlines()[1].split()[:3] == ["a-b", "a", "b"]


def test_the_core_never_imports_click():
    """Every module outside skyplan/cli/ loads without click (it is a CLI concern)."""
    code = (
        "import importlib, pkgutil, sys, skyplan\n"
        "for m in pkgutil.walk_packages(skyplan.__path__, 'skyplan.'):\n"
        "    if not m.name.startswith('skyplan.cli') and m.name != 'skyplan.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "print('click' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_both_clis_share_the_variable_options():
    from skyplan.cli import common, skyctl_cmd, skyplan_cmd

    def options(command):
        return {p.name: (tuple(p.opts), p.help) for p in command.params if p.name in ("var_items", "var_files")}

    probe = common.variables_options(lambda var_items, var_files: None)
    shared = {p.name: (tuple(p.opts), p.help) for p in probe.__click_params__}
    assert len(shared) == 2
    for command in (skyplan_cmd.plan, skyplan_cmd.apply, skyctl_cmd.create_link, skyctl_cmd.get_link, skyctl_cmd.delete_cluster):
        assert options(command) == shared, command.name
