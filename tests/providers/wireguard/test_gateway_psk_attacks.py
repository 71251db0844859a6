"""A hostile gateway answering for its preshared keys: it can never learn, print or hand on the
key of a peering it is no end of, nor have skyplan take its word for a key its peer holds."""

from __future__ import annotations

from skyplan_wireguard import psk
from skyplan_wireguard.ssh import Result
from tests.providers.wireguard.test_gateway_psks import HOSTS, hosts, links_yaml, nothing_of, peering_key, public_keys, run_ok  # noqa: F401

PIECE = 10


def test_a_hostile_gateway_s_claims_under_every_peer_s_key_are_never_handed_on(workspace, skyplan, hosts) -> None:
    text = links_yaml([("a-b", "a", "b"), ("b-c", "b", "c")], psk_links={"a-b", "b-c"})
    (workspace / "links.yaml").write_text(text)
    run_ok(skyplan, "apply", "--auto-approve")
    ab, bc = peering_key(hosts, workspace, "a", "b"), peering_key(hosts, workspace, "b", "c")
    public = public_keys(workspace)
    # a claims a key for every cluster it could know of: its peer b, b's peer c, itself.
    claims = {name: psk.generate() for name in public}
    answer = "preshared-keys live\n" + "".join(f"{public[name]}\t{claims[name]}\n" for name in sorted(public))
    # a's subnets change: a and its peer b are pushed, and both are asked for their keys.
    changed = text.replace("10.1.0.0/16", "10.11.0.0/16")
    (workspace / "links.yaml").write_text(changed)
    hosts.lies[(HOSTS["a"], "preshared_keys")] = Result(0, answer.encode(), b"")
    output = run_ok(skyplan, "apply", "--auto-approve")
    assert (HOSTS["a"], "preshared_keys") not in hosts.lies, "a was never asked"
    new_ab = peering_key(hosts, workspace, "a", "b")
    assert new_ab not in claims.values(), "a's word was taken for the key b holds"
    assert new_ab != ab  # the ends disagreed: both got a new one
    assert peering_key(hosts, workspace, "b", "c") == bc, "a peering a is no end of changed"
    assert bc not in hosts.state(HOSTS["a"])["config"]
    for name in ("b", "c"):
        assert not any(claim in hosts.state(HOSTS[name])["config"] for claim in claims.values())
    output += run_ok(skyplan, "plan")
    for secret in (ab, bc, new_ab, *claims.values()):
        assert not any(secret[i : i + PIECE] in output for i in range(len(secret) - PIECE + 1))
    nothing_of([ab, bc, new_ab, *claims.values()], workspace, output)
