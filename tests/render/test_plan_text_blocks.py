"""The plan text's quick block for a plain create is line for line the general block's."""

from __future__ import annotations

import random

import pytest

from skyplan.plan.model import Action, ResourceChange
from skyplan.render import plan_text
from skyplan.render.style import Style

KEYS = ["source", "target", "subnets", "endpoint", "address", "public_key", "a\x01b", "Zeta", "listen_port", "é"]
VALUES = [None, "c1", "x\"y", 51820, True, False, ["10.0.0.0/24", "10.1.0.0/24"], {"k": "v"}, 1.5, "\x1b[31m"]


def random_create(rng: random.Random) -> ResourceChange:
    after = {key: rng.choice(VALUES) for key in rng.sample(KEYS, rng.randrange(len(KEYS)))}
    planned = {key: rng.choice(VALUES) for key in rng.sample(KEYS, rng.randrange(3))}
    unknown = [key for key in rng.sample(KEYS, rng.randrange(3)) if key not in planned]
    kind = rng.choice(["cluster", "link"])
    name = rng.choice(["a", "b-1", "odd\nname"])
    return ResourceChange(
        address=f"{kind}.{name}", type=kind, name=name, action=Action.CREATE, after=after, planned=planned, after_unknown=unknown
    )


@pytest.mark.parametrize("colour", [False, True])
def test_the_quick_create_block_is_the_general_one(colour) -> None:
    rng = random.Random(7)
    style = Style(colour)
    for _ in range(2_000):
        change = random_create(rng)
        assert plan_text._change_block(change, style) == _general(change, style)


def _general(change: ResourceChange, style: Style) -> list[str]:
    # The general block, reached by a change the quick path does not take (a reason), minus the
    # reason's comment line, which is all that reason adds to a create.
    with_reason = change.model_copy(update={"reason": "r"})
    lines = plan_text._change_block(with_reason, style)
    assert lines[1] == "  # (r)"
    return [lines[0], *lines[2:]]
