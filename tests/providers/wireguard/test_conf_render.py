"""conf.render writes exactly the bytes the 0.4 Jinja template wrote, for every shape of file."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from jinja2 import Environment, StrictUndefined

from skyplan_wireguard import conf, keys

TEMPLATE = Path(__file__).with_name("wg-quick-0.4.conf.j2")


def old_render(c: conf.ClusterConf, private_key: str | None) -> str:
    env = Environment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.from_string(TEMPLATE.read_text()).render(
        cluster=c.cluster, address=c.address, listen_port=c.listen_port, private_key=private_key,
        mtu=c.mtu, forward=c.forward_command, peers=c.peers,
    )


def peer(rng: random.Random, i: int, ipv6: bool) -> conf.PeerConf:
    links = tuple(sorted(f"l{i}-{j}" for j in range(rng.choice((1, 1, 2, 3)))))
    allowed = [f"100.64.0.{i}/32", *(f"10.{i}.{j}.0/24" for j in range(rng.randrange(3)))]
    if ipv6:
        allowed.append(f"fd00::{i:x}/128")
    return conf.PeerConf(
        cluster=f"p{i}",
        links=links,
        public_key=keys.public_key(keys.generate()),
        endpoint=rng.choice((None, f"198.18.0.{i}:51820", f"[fd00::{i:x}]:51820", f"gw{i}.example.com:4500")),
        allowed_ips=tuple(allowed),
        persistent_keepalive=rng.choice((0, 25)),
        preshared_key=rng.choice((None, keys.generate())),
    )


SHAPES = list(itertools.product((None, "key"), (None, 1420), (False, True), (0, 1, 5), (False, True)))


@pytest.mark.parametrize(("private", "mtu", "forward", "peers", "ipv6"), SHAPES)
def test_the_file_is_byte_for_byte_what_the_template_wrote(private, mtu, forward, peers, ipv6) -> None:
    rng = random.Random(f"{private}{mtu}{forward}{peers}{ipv6}")
    c = conf.ClusterConf(
        cluster="hub-1",
        address="100.64.0.1/32",
        listen_port=51820,
        mtu=mtu,
        peers=tuple(peer(rng, i, ipv6) for i in range(peers)),
        forward=forward,
    )
    private_key = keys.generate() if private else None
    assert conf.render(c, private_key) == old_render(c, private_key)


def test_a_rendered_value_that_would_add_a_line_is_still_refused() -> None:
    rng = random.Random(1)
    bad = conf.PeerConf("p1", ("l1",), keys.public_key(keys.generate()), "198.18.0.1:51820\nPostUp = id", ("100.64.0.2/32",), 25)
    c = conf.ClusterConf("a", "100.64.0.1/32", 51820, None, (peer(rng, 3, False), bad))
    with pytest.raises(conf.UnsafeConfigError, match="line 1[0-9] is not a line skyplan writes"):
        conf.render(c, None)


def test_files_rendered_with_one_memo_of_sections_are_each_what_the_template_wrote() -> None:
    # One apply renders every cluster's file with one memo: each peer's section is made once.
    rng = random.Random(7)
    shared = [peer(rng, i, ipv6=i % 2 == 0) for i in range(6)]
    sections: dict = {}
    for n in range(4):
        peers = tuple(p._replace(links=(f"l{n}-{p.cluster}",)) for p in shared if p.cluster != f"p{n}")
        c = conf.ClusterConf(f"c{n}", f"100.64.1.{n}/32", 51820, None, peers)
        private_key = keys.generate()
        assert conf.render(c, private_key, sections) == old_render(c, private_key)
    # Kept: only sections without a preshared key, which never reaches the memo.
    kept = {p.public_key for p in shared if p.preshared_key is None}
    assert {key[0] for key in sections} == kept and len(sections) == len(kept)
    assert not any(p.preshared_key and p.preshared_key in text for p in shared for text in sections.values())


def test_a_section_refused_once_is_refused_in_every_file_that_holds_it() -> None:
    bad = conf.PeerConf("p1", ("l1",), keys.public_key(keys.generate()), "198.18.0.1:51820\nPostUp = id", ("100.64.0.2/32",), 25)
    sections: dict = {}
    for n in range(2):
        c = conf.ClusterConf(f"c{n}", "100.64.0.1/32", 51820, None, (bad._replace(links=(f"l{n}",)),))
        with pytest.raises(conf.UnsafeConfigError, match="line 10 is not a line skyplan writes"):
            conf.render(c, None, sections)
    assert sections == {}


def test_a_link_name_that_would_add_a_line_is_refused() -> None:
    good = conf.PeerConf("p1", ("l1\nPostUp = id",), keys.public_key(keys.generate()), None, ("100.64.0.2/32",), 25)
    c = conf.ClusterConf("c", "100.64.0.1/32", 51820, None, (good,))
    with pytest.raises(conf.UnsafeConfigError, match="line 7 is not a line skyplan writes"):
        conf.render(c, None, {})
