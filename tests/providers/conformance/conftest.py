"""The modes' worlds last for the conformance module and end with it (the SSH mode's lab)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.providers.conformance.modes import MODES


@pytest.fixture(scope="module", autouse=True)
def close_modes() -> Iterator[None]:
    yield
    for mode in MODES:
        mode.close()
