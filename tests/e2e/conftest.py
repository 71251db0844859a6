"""Fixtures for the end-to-end tests: a lab of network namespaces that is always torn down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .netns import Lab, missing_prerequisites


@pytest.fixture(scope="session")
def lab_prerequisites() -> None:
    """Fails, never skips: CI runs these tests as root with WireGuard's tools installed."""
    missing = missing_prerequisites()
    if missing:
        pytest.fail(
            "the end-to-end tests need, and this machine lacks:\n  - "
            + "\n  - ".join(missing)
            + "\n(.ci/setup installs the packages; run the tests as root)",
            pytrace=False,
        )


@pytest.fixture
def make_lab(lab_prerequisites: None, tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """`make_lab("a", "b")` builds a started Lab; every lab is closed when the test ends."""
    labs: list[Lab] = []

    def build(*clusters: str) -> Lab:
        lab = Lab(clusters, tmp_path / f"lab{len(labs)}")
        lab.start()
        labs.append(lab)
        return lab

    yield build
    errors = []
    for lab in reversed(labs):
        try:
            lab.close()
        except Exception as exc:  # close every lab before reporting
            errors.append(str(exc))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
