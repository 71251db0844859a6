"""Typed resources of the SDK: addresses that read back what they print, and a link's two ends."""

from __future__ import annotations

import pytest

from skyplan.sdk import Address, LinkEnds, ResourceView, link_ends
from skyplan.state.model import ResourceState, ResourceStatus


@pytest.mark.parametrize("text", ["cluster.a", "link.us-eu", "link.a.b"])
def test_an_address_reads_back_what_it_prints(text: str) -> None:
    address = Address.parse(text)
    assert str(address) == text and address.type == text.split(".")[0]
    assert Address.parse(str(address)) == address


@pytest.mark.parametrize("text", ["cluster", "cluster.", "node.a", ".a", ""])
def test_anything_else_is_refused_with_the_rule(text: str) -> None:
    with pytest.raises(ValueError, match="write cluster.NAME or link.NAME"):
        Address.parse(text)


def test_a_link_knows_its_ends_in_every_form() -> None:
    attributes = {"source": "a", "target": "b"}
    view = ResourceView("link", "ab", attributes)
    recorded = ResourceState(type="link", name="ab", attributes=attributes, status=ResourceStatus(since="now"), created="now")
    assert view.ends == recorded.ends == link_ends(attributes) == LinkEnds(source="a", target="b")
    assert view.ends.source == "a" and recorded.ends.target == "b" and tuple(view.ends) == ("a", "b")
    with pytest.raises(KeyError):
        ResourceView("cluster", "a", {"endpoint": "x"}).ends  # noqa: B018 - a cluster has no ends
