"""--target / --exclude scopes: dependencies come along, dependents go with what they need."""

from __future__ import annotations

import pytest

from skyplan.errors import PlanError
from skyplan.plan.model import DesiredResource
from skyplan.plan.targeting import resolve_scope
from skyplan.state.model import ResourceState, ResourceStatus, State


def desired(*items):
    out = {}
    for address, attributes in items:
        kind, name = address.split(".", 1)
        out[address] = DesiredResource(type=kind, name=name, attributes=attributes)
    return out


def recorded(*items):
    resources = []
    for address, attributes in items:
        kind, name = address.split(".", 1)
        resources.append(ResourceState(type=kind, name=name, attributes=attributes, status=ResourceStatus(since="x"), created="x"))
    return State(lineage="l", resources=resources)


WANT = desired(("cluster.a", {}), ("cluster.b", {}), ("cluster.c", {}), ("link.ab", {"source": "a", "target": "b"}), ("link.bc", {"source": "b", "target": "c"}))
HAVE = recorded(("cluster.a", {}), ("cluster.old", {}), ("link.a-old", {"source": "a", "target": "old"}))


@pytest.mark.parametrize(
    "targets, excludes, scope",
    [
        ([], [], None),
        (["link.ab"], [], {"link.ab", "cluster.a", "cluster.b"}),
        (["cluster.c"], [], {"cluster.c"}),
        (["cluster.old"], [], {"cluster.old", "link.a-old"}),  # going: its links go first
        ([], ["cluster.b"], {"cluster.a", "cluster.c", "cluster.old", "link.a-old"}),
        (["link.ab", "link.bc"], ["cluster.c"], {"link.ab", "cluster.a", "cluster.b"}),
    ],
)
def test_scope(targets, excludes, scope):
    assert resolve_scope(WANT, HAVE, targets, excludes) == scope


@pytest.mark.parametrize("address, message", [("link.nope", "no such resource"), ("router.x", "not a resource address")])
def test_unknown_targets_are_errors(address, message):
    with pytest.raises(PlanError, match=message):
        resolve_scope(WANT, HAVE, [address], [])


def test_excluding_a_link_that_goes_keeps_the_clusters_it_joins():
    want = desired(("cluster.a", {}))
    have = recorded(("cluster.a", {}), ("cluster.b", {}), ("link.ab", {"source": "a", "target": "b"}))
    assert resolve_scope(want, have, [], ["link.ab"]) == {"cluster.a"}


def test_every_bad_address_is_reported_at_once():
    with pytest.raises(PlanError) as caught:
        resolve_scope(WANT, HAVE, ["link.nope", "x"], ["cluster.gone"])
    assert [d.message.split(" ", 1)[0] for d in caught.value.diagnostics] == ["--target", "--target", "--exclude"]
