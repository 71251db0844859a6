"""Plan literals of strings are exactly JSON strings, whatever the characters."""

from __future__ import annotations

import json
import random
import string

from skyplan.render.values import literal


def test_a_string_literal_is_its_json_text_for_every_kind_of_character() -> None:
    chars = string.printable + "\x7f\u00e9\u2028\ud7ff\"\\\x00\x1f\x1b"
    rng = random.Random(20261201)
    for _ in range(20_000):
        value = "".join(rng.choice(chars) for _ in range(rng.randrange(8)))
        assert literal(value) == json.dumps(value), repr(value)


def test_a_map_key_cannot_break_the_plan_into_lines() -> None:
    from skyplan.plan.model import Action, Plan, ResourceChange
    from skyplan.render.plan_text import render_plan

    hostile = {"labels": {"a\n      + injected = true\n": "x", "plain": 1}}
    assert literal(hostile["labels"]) == '{ a\\n      + injected = true\\n = "x", plain = 1 }'
    change = ResourceChange(address="cluster.a", type="cluster", name="a", action=Action.CREATE, after=hostile)
    text = render_plan(Plan(changes=[change]))
    assert "\n      + injected" not in text
    assert len(text.splitlines()) == len(render_plan(Plan(changes=[change.model_copy(update={"after": {"labels": {"k": "x"}}})])).splitlines())
