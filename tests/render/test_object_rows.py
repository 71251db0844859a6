"""skyctl's table rows, as the batch builder makes them: the same as one link_row per link."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from skyplan.render import objects
from skyplan.sdk import Display
from skyplan.state.model import ResourceState, ResourceStatus


def link(name: str, source: str, target: str, created: str, **computed) -> ResourceState:
    return ResourceState(
        type="link",
        name=name,
        attributes={"source": source, "target": target},
        computed=computed,
        status=ResourceStatus(since=created),
        created=created,
    )


def stamp(seconds_ago: int) -> str:
    moment = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.mark.parametrize("display", [objects.NO_DISPLAY, Display(columns=(("KEY", "key"),), missing="<none>")])
def test_link_rows_are_what_link_row_gives_for_each_link(display):
    links = [
        link("a", "c1", "c2", stamp(200)),  # minutes: a second ticking over changes no row
        link("b", "c2", "c3", stamp(400), key="k"),
        link("c", "c3", "c1", stamp(3 * 86400)),
        link("d", "c1", "c3", "not a time"),
    ]
    phases = ["INIT", "ACTIVE", "FAILED", "PENDING"]
    expected = [objects.link_row(r, phase, display=display) for r, phase in zip(links, phases)]
    assert objects.link_rows(links, phases, display) == expected
    assert [row[-1] for row in expected][-1] == "<unknown>"
