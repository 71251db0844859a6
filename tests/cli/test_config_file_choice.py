"""Which links.yaml a command works on: FILE, else $SKYPLAN_CONFIG, else ./links.yaml, for every
command; FILE first for the state commands; and an apply with nothing to do needs no terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.workspaces import links_yaml

WORKSPACES = ("here", "env", "arg")


def config(prefix: str) -> str:
    return links_yaml(
        [(f"{prefix}-a", "192.0.2.1:51820", ["10.1.0.0/16"]), (f"{prefix}-b", "192.0.2.2:51820", ["10.2.0.0/16"])],
        [(f"{prefix}-link", f"{prefix}-a", f"{prefix}-b")],
    )


def path_of(prefix: str) -> str:
    return "links.yaml" if prefix == "here" else f"{prefix}/links.yaml"


@pytest.fixture
def three(workspace: Path) -> Path:
    """./links.yaml, env/links.yaml and arg/links.yaml, each with clusters named after it."""
    for prefix in WORKSPACES:
        (workspace / path_of(prefix)).parent.mkdir(exist_ok=True)
        (workspace / path_of(prefix)).write_text(config(prefix))
    return workspace


def choose(level: str, monkeypatch) -> tuple[str, list[str]]:
    """The workspace that `level` picks, and the FILE argument (if any) that picks it."""
    if level == "default":
        return "here", []
    monkeypatch.setenv("SKYPLAN_CONFIG", "env/links.yaml")
    if level == "env":
        return "env", []
    return "arg", ["arg/links.yaml"]


LEVELS = ["argument", "env", "default"]

# Commands that read the configuration; the others are made invalid, so success shows the choice.
BY_CONFIG = [
    ("validate",),
    ("fmt", "--check"),
    ("plan", "--compact"),
    ("plan", "--destroy"),
    ("apply", "--auto-approve"),
    ("destroy", "--auto-approve"),
]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("command", BY_CONFIG, ids=" ".join)
def test_commands_that_read_the_file(three, skyplan, monkeypatch, level, command):
    chosen, file_args = choose(level, monkeypatch)
    for prefix in WORKSPACES:
        if prefix != chosen:
            (three / path_of(prefix)).write_text("version: [")
    result = skyplan(command[0], *file_args, *command[1:])
    assert result.exit_code == 0, result.output
    if command == ("plan", "--compact"):
        assert f"+ cluster.{chosen}-a" in result.output
    if command == ("apply", "--auto-approve"):
        assert (three / path_of(chosen)).parent.joinpath(".skyplan/state.json").exists()


# Commands that read only the state: each workspace is applied, and the output shows whose.
BY_STATE = [
    (("state", "list"), "cluster.{p}-a"),
    (("state", "show", "cluster.{p}-a"), 'cluster "{p}-a"'),
    (("show",), 'cluster "{p}-a"'),
    (("show", "--json"), '"name": "{p}-a"'),
    (("force-unlock", "no-such-lock"), "/{d}.skyplan/state.json"),
]


@pytest.fixture
def three_applied(three: Path, skyplan) -> Path:
    for prefix in WORKSPACES:
        assert skyplan("apply", path_of(prefix), "--auto-approve").exit_code == 0
    return three


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(("command", "says"), BY_STATE, ids=[" ".join(c) for c, _ in BY_STATE])
def test_commands_that_read_the_state(three_applied, skyplan, monkeypatch, level, command, says):
    chosen, file_args = choose(level, monkeypatch)
    name, *rest = (part.format(p=chosen) for part in command)
    if name == "state":  # `state SUB [FILE] …`
        args = [name, rest[0], *file_args, *rest[1:]]
    else:
        args = [name, *file_args, *rest]
    result = skyplan(*args)
    expected = says.format(p=chosen, d="" if chosen == "here" else f"{chosen}/")
    assert expected in result.output, result.output
    for other in WORKSPACES:
        if other != chosen:
            assert f"{other}-a" not in result.output
    if name == "force-unlock":
        assert result.exit_code == 1 and "no lock with ID no-such-lock" in result.output
    else:
        assert result.exit_code == 0


def test_state_rm_takes_file_first(three_applied, skyplan):
    removed = skyplan("state", "rm", "arg/links.yaml", "link.arg-link")
    assert removed.exit_code == 0, removed.output
    assert removed.output == "Removed link.arg-link\nSuccessfully removed 1 resource instance.\n"
    assert skyplan("state", "list", "arg/links.yaml").output == "cluster.arg-a\ncluster.arg-b\n"
    assert "link.here-link" in skyplan("state", "list").output


def test_state_rm_reads_a_file_named_like_an_address_only_with_a_path(three_applied, skyplan):
    (three_applied / "link.yaml").write_text(config("here"))
    taken_as_address = skyplan("state", "rm", "link.yaml", "link.here-link")
    assert taken_as_address.exit_code == 1 and "no resource at address link.yaml in the state" in taken_as_address.output
    assert skyplan("state", "rm", "./link.yaml", "link.here-link").exit_code == 0
    assert "link.here-link" not in skyplan("state", "list").output


@pytest.mark.parametrize(
    "command",
    [("state", "list", "{f}"), ("state", "show", "{f}", "cluster.a"), ("state", "rm", "{f}", "cluster.a"), ("force-unlock", "{f}", "x"), ("show", "{f}")],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_named_file_that_is_missing_is_an_error(workspace, skyplan, monkeypatch, command):
    result = skyplan(*(part.format(f="prod/links.yml") for part in command))
    assert (result.exit_code, result.output) == (1, "Error: prod/links.yml: no such file\n")
    monkeypatch.setenv("SKYPLAN_CONFIG", "prod/links.yml")
    from_env = skyplan(*(part for part in command if part != "{f}"))
    assert (from_env.exit_code, from_env.output) == (1, "Error: prod/links.yml: no such file\n")
    assert list(workspace.iterdir()) == []


def test_the_old_config_option_still_works(three_applied, skyplan):
    assert skyplan("state", "list", "--config", "arg/links.yaml").output == "cluster.arg-a\ncluster.arg-b\nlink.arg-link\n"
    assert 'cluster "arg-a"' in skyplan("state", "show", "cluster.arg-a", "--config", "arg/links.yaml").output
    assert 'cluster "arg-a"' in skyplan("show", "--config", "arg/links.yaml").output
    assert "arg/.skyplan/state.json" in skyplan("force-unlock", "x", "--config", "arg/links.yaml").output
    same = skyplan("state", "list", "arg/links.yaml", "--config", "arg/links.yaml")
    assert same.exit_code == 0
    both = skyplan("state", "list", "arg/links.yaml", "--config", "env/links.yaml")
    assert both.exit_code == 2 and "name different files; give FILE only" in both.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("state", "show"), "Missing argument 'ADDR'."),
        (("state", "show", "links.yaml", "cluster.here-a", "extra"), "Got unexpected extra argument (extra)"),
        (("force-unlock",), "Missing argument 'ID'."),
        (("state", "list", "a.yaml", "b.yaml"), "Got unexpected extra argument (b.yaml)"),
    ],
)
def test_wrong_argument_counts_are_usage_errors(three_applied, skyplan, args, message):
    result = skyplan(*args)
    assert result.exit_code == 2 and message in result.output


def test_show_names_a_json_file_that_is_no_plan(three_applied, skyplan):
    (three_applied / "terraform.tfplan.json").write_text('{"format_version": "1.2", "terraform_version": "1.11"}')
    result = skyplan("show", "terraform.tfplan.json")
    assert (result.exit_code, result.output) == (1, "Error: terraform.tfplan.json is not a skyplan plan file\n")


# -- An apply with nothing to do, without a terminal (CliRunner's input is not one) ---------------

NO_CHANGES = "No changes. Links match the configuration.\n"


def serial(workspace: Path) -> int:
    return json.loads((workspace / ".skyplan/state.json").read_text())["serial"]


@pytest.mark.parametrize("command", [("apply",), ("apply", "--detailed-exitcode"), ("destroy",)], ids=" ".join)
def test_nothing_to_do_needs_no_confirmation(basic, skyplan, command):
    if command[0] == "destroy":
        skyplan("apply", "--auto-approve")
        skyplan("destroy", "--auto-approve")
    else:
        skyplan("apply", "--auto-approve")
    before = serial(basic)
    result = skyplan(*command)
    assert (result.exit_code, result.output) == (0, NO_CHANGES)
    assert serial(basic) == before


def test_something_to_do_still_needs_a_terminal(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / "links.yaml").write_text((basic / "links.yaml").read_text().replace("203.0.113.10", "203.0.113.11"))
    before = serial(basic)
    for command in (("apply",), ("destroy",)):
        result = skyplan(*command)
        assert result.exit_code == 1
        assert "needs confirmation, but input is not a terminal; pass --auto-approve" in result.output
    assert serial(basic) == before
    assert "203.0.113.11" not in (basic / "wireguard/eu-central/wgsky0.conf").read_text()
