"""Keys agree with WireGuard's own tools: `wg pubkey` derives the public key we record."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from skyplan_wireguard import keys


def wg(*args: str, input: str) -> str:
    if shutil.which("wg") is None:
        pytest.fail("wg (wireguard-tools) is not installed; .ci/setup installs it")
    return subprocess.run(["wg", *args], input=input, capture_output=True, text=True, check=True).stdout.strip()


def test_generated_keys_match_wg_pubkey():
    for _ in range(25):
        private = keys.generate()
        assert keys.is_canonical(private)
        assert keys.public_key(private) == wg("pubkey", input=private)


def test_keys_from_wg_genkey_match():
    for _ in range(10):
        private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
        assert keys.public_key(private) == wg("pubkey", input=private)


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("uBUMPXoOM7aziks+Vh2gX37m349A228D7ZEc49DkGUU=", True),
        ("uBUMPXoOM7aziks+Vh2gX37m349A228D7ZEc49DkGUV=", False),  # last bits not zero: wg rejects it
        ("uBUMPXoOM7aziks+Vh2gX37m349A228D7ZEc49DkGUU", False),
        ("not a key at all, not a key at all, not a k=", False),
    ],
)
def test_only_canonical_base64_is_a_key(text, canonical):
    assert keys.is_canonical(text) is canonical


def test_every_peer_holds_the_public_key_that_wg_derives(basic, skyplan):
    assert skyplan("apply", "--auto-approve").exit_code == 0
    state = json.loads((basic / ".skyplan/state.json").read_text())
    recorded = {r["name"]: r["computed"]["public_key"] for r in state["resources"] if r["type"] == "cluster"}
    for name, public in recorded.items():
        private = (basic / f".skyplan/keys/{name}.key").read_text().strip()
        assert wg("pubkey", input=private) == public
    for config in (basic / "wireguard").rglob("wgsky0.conf"):
        for line in config.read_text().splitlines():
            if line.startswith("PublicKey = "):
                assert line.removeprefix("PublicKey = ") in recorded.values()


def test_a_bad_key_file_is_an_error_not_a_silent_new_key(basic, skyplan):
    skyplan("apply", "--auto-approve")
    (basic / ".skyplan/keys/us-west.key").write_text("garbage\n")
    result = skyplan("plan")
    assert result.exit_code == 1
    assert "does not hold a WireGuard private key" in result.output
    assert "delete it to have skyplan plan a new key" in result.output
    assert (basic / ".skyplan/keys/us-west.key").read_text() == "garbage\n"


@pytest.mark.parametrize(
    "shown",
    [
        "{key}",
        "{lower}",
        "{upper}",
        "{key_unpadded}",
        "prefix={lower} suffix",
        "privatekey={upper}",
        "{lower_unpadded}\n",
    ],
)
def test_redact_catches_a_key_in_any_case_and_without_padding(shown):
    key = keys.generate()
    text = shown.format(
        key=key, lower=key.lower(), upper=key.upper(), key_unpadded=key[:-1], lower_unpadded=key.lower()[:-1]
    )
    masked = keys.redact(text)
    assert "(key)" in masked
    assert key[:20].lower() not in masked.lower()


def test_redact_leaves_longer_base64_and_digests_alone():
    digest = "a" * 64
    assert keys.redact(f"sha256:{digest}") == f"sha256:{digest}"
    assert keys.redact("vpn-ap-south-1.example.net:51820") == "vpn-ap-south-1.example.net:51820"


def test_a_key_file_that_is_not_ascii_is_named_never_quoted(tmp_path):
    (tmp_path / "a.key").write_bytes("clé secrète\n".encode())
    with pytest.raises(keys.KeyFileError) as raised:
        keys.read(tmp_path / "a.key", tmp_path)
    assert "secr" not in str(raised.value) and "does not hold a WireGuard private key" in str(raised.value)


def test_a_generated_pair_is_a_key_and_its_own_public_key() -> None:
    pairs = {keys.generate_pair() for _ in range(20)}
    assert len(pairs) == 20
    for private, public in pairs:
        assert keys.is_canonical(private) and keys.is_canonical(public)
        assert keys.public_key(private) == public == wg("pubkey", input=private)
