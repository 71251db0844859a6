"""Backend URLs are read as libpq reads them, and no message or display shows a piece of a password."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from skyplan.redact import mask
from skyplan.state.urls import URLProblem, check_url, display_url, has_password, url_secrets

PASSWORD = "Tr0ub4dor-and-3"


def pieces(secret: str, shortest: int = 4) -> list[str]:
    """Every piece of `secret` at least `shortest` long (the whole secret included)."""
    return [secret[i : i + n] for n in range(min(shortest, len(secret)), len(secret) + 1) for i in range(len(secret) - n + 1)]


def assert_hidden(text: str, secret: str) -> None:
    shown = [piece for piece in pieces(secret) if piece in text]
    assert not shown, f"{shown[-1]!r} of the password is in: {text}"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"postgresql://u:p@{PASSWORD}@db.example/sky", "an '@' that does not end the user name and password"),
        (f"postgresql://u:{PASSWORD}@ss@db.example/sky", "an '@' that does not end the user name and password"),
        (f"postgresql://u:{PASSWORD[:5]}/{PASSWORD[5:]}@db.example/sky", "an '@' that does not end"),
        (f"postgresql://u:{PASSWORD}@[::1/sky", "an IPv6 host has no closing ']'"),
        ("postgresql://[zz]:5432/sky", "is not an IPv6 address"),
        (f"postgresql://u:{PASSWORD}@[]/sky", "is empty"),
        (f"postgresql://u:{PASSWORD}@[::1]x/sky", "must be followed by ':port'"),
        (f"postgresql://u:{PASSWORD}@db]x/sky", "may only enclose an IPv6 host"),
        (f"postgresql://u:{PASSWORD}@db.example:99999/sky", "a port is not a number from 1 to 65535"),
        (f"postgresql://u:{PASSWORD}@db.example:54x/sky", "a port is not a number"),
        (f"postgresql://u:{PASSWORD}%ZZ@db.example/sky", "the password has a '%' that is not followed by two hex digits"),
        (f"postgresql://u:{PASSWORD}%00@db.example/sky", "the password holds %00"),
        (f"postgresql://u:{PASSWORD}%ff@db.example/sky", "the password is not UTF-8"),
        (f"postgresql://u@db.example/sky?password={PASSWORD[:6]}&{PASSWORD[6:]}=1", "not a libpq connection parameter"),
        (f"postgresql://u@db.example/sky?password={PASSWORD}&x", "not of the form key=value"),
        (f"postgresql://u@db.example/sky?password={PASSWORD}=x", "not of the form key=value"),
        (f"postgresql://u@db.example/sky?application_name=%ff&password={PASSWORD}", "value of a query parameter is not UTF-8"),
        (f"postgresql://u:{PASSWORD}\udcff@db.example/sky", "the URL is not valid UTF-8 text"),
        (f"postgresql://u:{PASSWORD}%41\udcff@db.example/sky", "the URL is not valid UTF-8 text"),
        (f"mysql://u:{PASSWORD}@db.example/sky", "expected a URL of the form postgresql://"),
        (f"u:{PASSWORD}@db.example/sky", "expected a URL of the form postgresql://"),
    ],
)
def test_a_url_that_libpq_would_misread_is_refused_without_quoting_it(url, problem):
    with pytest.raises(URLProblem, match=problem) as caught:
        check_url(url)
    assert_hidden(str(caught.value), PASSWORD)
    assert "db.example" not in str(caught.value)  # nothing of the URL is quoted
    assert display_url(url) == "(a URL that is not valid)"
    if "://" in url and PASSWORD[:4] in url:
        assert_hidden(mask(url, url_secrets(url)), PASSWORD)  # as the crash report masks it


@pytest.mark.parametrize(
    ("url", "shown", "user", "password"),
    [
        ("postgresql://alice:s3cr%40t@db.example:5433/sky?sslmode=require&password=hide-me",
         "postgresql://alice@db.example:5433/sky?sslmode=require", "alice", "hide-me"),
        ("postgresql:///sky?host=/var/run/postgresql&password=hide-me", "postgresql:///sky?host=/var/run/postgresql", None, "hide-me"),
        ("postgres://db.example/sky", "postgres://db.example/sky", None, None),
        ("postgresql://u:p%40ss%2Fw%3Ard%23%3F%26@[::1]:5432/sky", "postgresql://u@[::1]:5432/sky", "u", "p@ss/w:rd#?&"),
        ("postgresql://u:hide-me@[fe80::1%25eth0]:5432/sky", "postgresql://u@[fe80::1%25eth0]:5432/sky", "u", "hide-me"),
        ("postgresql://u:hide:me@h1,h2:5433,[::1]:5434/sky", "postgresql://u@h1,h2:5433,[::1]:5434/sky", "u", "hide:me"),
        ("postgresql://u:hide#me@db.example/sky", "postgresql://u@db.example/sky", "u", "hide#me"),
        ("postgresql://u:hide?me@db.example/sky?ssl=true", "postgresql://u@db.example/sky?ssl=true", "u", "hide?me"),
        ("postgresql://db.example/sky?sslpassword=k3y-pass&connect_timeout=5",
         "postgresql://db.example/sky?connect_timeout=5", None, None),
    ],
)
def test_valid_urls_are_read_as_libpq_reads_them_and_shown_without_secrets(url, shown, user, password):
    check_url(url)
    assert display_url(url) == shown
    assert has_password(url)  == (shown != url)
    parsed = conninfo_to_dict(url)
    assert parsed.get("user") == user and parsed.get("password") == password
    for secret in url_secrets(url):
        assert_hidden(shown, secret)


SPECIALS = "@/:?#&=%[],"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("abcXYZ019-_." + SPECIALS), min_size=6, max_size=24))
def test_any_password_is_either_read_whole_by_libpq_or_refused_without_a_piece_of_it(password):
    url = f"postgresql://sky:{password}@db.example:5432/state?sslmode=disable"
    try:
        check_url(url)
    except URLProblem as problem:
        assert_hidden(str(problem), password)
        assert_hidden(display_url(url), password)
        return
    # Accepted: libpq must see exactly the password that was written, and nothing else moves.
    parsed = conninfo_to_dict(url)
    assert parsed["user"] == "sky" and parsed["host"] == "db.example" and parsed["port"] == "5432"
    assert parsed["dbname"] == "state" and parsed["password"] == _percent_decoded(password)
    assert_hidden(display_url(url), password)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=24).filter(lambda s: "\x00" not in s))
def test_a_percent_encoded_password_is_always_accepted_and_read_back(password):
    url = f"postgresql://sky:{quote(password, safe='')}@db.example/state"
    check_url(url)
    assert conninfo_to_dict(url)["password"] == password
    assert display_url(url) == "postgresql://sky@db.example/state"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab1:/@[]?&=%#,.x"), max_size=30))
def test_check_url_raises_nothing_but_url_problem(tail):
    url = f"postgresql://{tail}"
    try:
        check_url(url)
    except URLProblem:
        return
    display_url(url)
    try:
        conninfo_to_dict(url)
    except ProgrammingError as exc:  # pragma: no cover - the point of the test is that it never happens
        pytest.fail(f"accepted {url!r}, which libpq refuses: {exc}")


def test_mask_hides_every_piece_of_a_secret():
    text = f"failed to resolve host '{PASSWORD[3:]}@db' for {PASSWORD[:4]}"
    masked = mask(text, [PASSWORD])
    assert_hidden(masked, PASSWORD)
    assert masked.startswith("failed to resolve host '***@db' for ***")


def _percent_decoded(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text, errors="strict")
