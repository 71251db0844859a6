"""A malformed backend URL is a located one-line error, and no message shows a piece of its password."""

from __future__ import annotations

import json

import pytest

from tests.postgres_server import PASSWORD, PASSWORD_ROLE
from tests.state.test_urls import assert_hidden
from tests.workspaces import BASIC

SECRET = "Zq7-wombat-Pearl"

MALFORMED = {
    "unencoded-at": f"postgresql://sky:{SECRET[:6]}@{SECRET[6:]}@db.invalid/sky",
    "unencoded-slash": f"postgresql://sky:{SECRET[:6]}/{SECRET[6:]}@db.invalid/sky",
    "ipv6-unclosed": f"postgresql://sky:{SECRET}@[::1/sky",
    "ipv6-not-an-address": f"postgresql://sky:{SECRET}@[zz]:5432/sky",
    "ipv6-empty": f"postgresql://sky:{SECRET}@[]/sky",
    "bad-port": f"postgresql://sky:{SECRET}@db.invalid:99999/sky",
    "bad-percent": f"postgresql://sky:{SECRET}%ff@db.invalid/sky",
    "not-utf-8": f"postgresql://sky:{SECRET}\udcff@db.invalid/sky",  # undecodable bytes in the environment
    "ampersand-in-query-password": f"postgresql://sky@db.invalid/sky?password={SECRET[:6]}&{SECRET[6:]}=1",
}


def with_backend(url: str) -> str:
    return BASIC.replace("clusters:\n", f"backend:\n  type: postgres\n  url: {json.dumps(url)}\nclusters:\n", 1)


def assert_one_clean_line(result, start: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == "", result.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(start), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert_hidden(result.output, SECRET)


@pytest.mark.parametrize("url", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_url_in_links_yaml_is_located(workspace, skyplan, skyctl, url):
    (workspace / "links.yaml").write_text(with_backend(url))
    for command in (("validate",), ("plan",), ("apply", "--auto-approve")):
        assert_one_clean_line(skyplan(*command), "Error: links.yaml:7:8: backend.url: ")
    assert_one_clean_line(skyctl("get", "link"), "Error: links.yaml:7:8: backend.url: ")
    if "\udcff" not in url:  # a YAML escape the repair commands' plain reader refuses: defaults apply
        # The repair commands work without a valid configuration, but not without the backend.
        assert_one_clean_line(skyplan("state", "list"), "Error: links.yaml: backend.url: ")
    assert not (workspace / ".skyplan").exists(), "nothing is written, not even a local state"


@pytest.mark.parametrize("url", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_url_in_skyplan_backend_is_named(basic, skyplan, skyctl, monkeypatch, url):
    monkeypatch.setenv("SKYPLAN_BACKEND", url)
    for run in (lambda: skyplan("plan"), lambda: skyplan("state", "list"), lambda: skyctl("get", "link")):
        assert_one_clean_line(run(), "Error: SKYPLAN_BACKEND: ")
    assert not (basic / ".skyplan").exists()


def test_the_message_says_what_to_do(workspace, skyplan):
    (workspace / "links.yaml").write_text(with_backend(MALFORMED["unencoded-at"]))
    assert "write '@' as %40" in skyplan("validate").stderr
    (workspace / "links.yaml").write_text(with_backend(MALFORMED["ipv6-unclosed"]))
    assert "an IPv6 host has no closing ']'" in skyplan("validate").stderr


@pytest.mark.postgres
def test_a_percent_encoded_password_with_every_special_character_connects(basic, skyplan, monkeypatch, postgres_server):
    # The server trusts this role, so the password only has to survive the URL intact.
    special = "p@ss/w:rd#?&=%[] é"
    from urllib.parse import quote

    monkeypatch.setenv("SKYPLAN_BACKEND", postgres_server.url(postgres_server.create_database().rsplit("/", 1)[1], password=quote(special, safe="")))
    result = skyplan("apply", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "Apply complete!" in result.stdout
    assert_hidden(result.output, special)


@pytest.mark.postgres
@pytest.mark.parametrize("spelling", ["%40", "%2F", "%3A"])
def test_a_wrong_password_with_special_characters_is_refused_without_a_piece_of_it(basic, skyplan, monkeypatch, postgres_server, spelling):
    wrong = f"{SECRET[:7]}{spelling}{SECRET[7:]}"
    monkeypatch.setenv("SKYPLAN_BACKEND", postgres_server.url(user=PASSWORD_ROLE, password=wrong))
    result = skyplan("plan")
    assert_one_clean_line(result, "Error: cannot connect to the state backend postgresql://skyplan_password@127.0.0.1:")
    assert f'password authentication failed for user "{PASSWORD_ROLE}"' in result.stderr
    assert PASSWORD not in result.output


def test_an_unresolvable_host_shows_no_piece_of_an_encoded_password(basic, skyplan, monkeypatch):
    # Before: an unencoded '@' made libpq resolve "the rest of the password@host" and print it.
    monkeypatch.setenv("SKYPLAN_BACKEND", f"postgresql://sky:{SECRET[:6]}%40{SECRET[6:]}@db.invalid/sky?connect_timeout=2")
    result = skyplan("plan")
    assert_one_clean_line(result, "Error: cannot connect to the state backend postgresql://sky@db.invalid/sky")
    assert "failed to resolve host 'db.invalid'" in result.stderr
