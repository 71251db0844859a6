"""What the crash report masks: URL passwords however malformed, key-shaped values, secret options."""

from __future__ import annotations

import pytest

from skyplan.redact import mask, redact, redact_argv, redact_environment
from tests.state.test_urls import assert_hidden

SECRET = "Vq8-Rk2mZp-Wx4j"


@pytest.fixture(autouse=True)
def _nothing_remembered(monkeypatch):
    # Secrets that earlier tests' runs met would be masked here too: each test starts afresh.
    from skyplan import redact as module

    monkeypatch.setattr(module, "_remembered", set())
KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"postgresql://u:{SECRET}@db/sky", "postgresql://u:***@db/sky"),
        (f"postgresql://u:{SECRET[:4]}@{SECRET[4:]}@db/sky", "postgresql://u:***@db/sky"),
        (f"postgres://:{SECRET[:4]}/{SECRET[4:]}@db/sky", "postgres://:***@db/sky"),
        (f"'mysql://root:{SECRET}@h' and more", "'mysql://root:***@h' and more"),
        (f"postgresql://u@db/sky?sslmode=require&password={SECRET}", "postgresql://u@db/sky?sslmode=require&password=***"),
        (f"host=db password='{SECRET} x' user=u", "host=db password='***' user=u"),
        (f"--db-token={SECRET}", "--db-token=***"),
        (f"PrivateKey = {KEY}", "PrivateKey = ***"),
        (f"peer {KEY} is unknown", "peer <key> is unknown"),
        (f"key {KEY.lower()}", "key <key>"),
        (f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n-----END OPENSSH PRIVATE KEY-----", "<private key>"),
    ],
)
def test_secret_shapes_are_masked(text, shown):
    assert redact(text) == shown


def test_secrets_named_are_masked_in_pieces_but_short_ones_are_not():
    assert mask(f"host '{SECRET[5:]}@db'", [SECRET]) == "host '***@db'"
    assert mask("a pw in a message", ["pw"]) == "a pw in a message"  # would mask every "pw"


def test_argv_keeps_the_command_and_masks_values():
    argv = ["skyplan", "apply", "links.yaml.j2", "--var", f"region={SECRET}", "--password", SECRET, f"--api-key={SECRET}", "--auto-approve"]
    shown = redact_argv(argv)
    assert shown == ["skyplan", "apply", "links.yaml.j2", "--var", "region=***", "--password", "***", "--api-key=***", "--auto-approve"]


def test_environment_is_filtered_and_masked():
    environ = {
        "SKYPLAN_BACKEND": f"postgresql://sky:{SECRET}@db/sky",
        "PGPASSWORD": SECRET,
        "SKYPLAN_CONFIG": "links.yaml",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "HOME": "/root",
    }
    lines = redact_environment(environ, ("SKYPLAN_", "PG"))
    assert lines == ["PGPASSWORD=***", "SKYPLAN_BACKEND=postgresql://sky:***@db/sky", "SKYPLAN_CONFIG=links.yaml"]
    assert_hidden("\n".join(lines), SECRET)
