"""Fixtures for the end-to-end tests: a lab of network namespaces that is always torn down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .gateways import GatewayLab, running_lab
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
    """`make_lab("a", "b", behind_nat=("b",))` builds a started Lab; every lab is closed when the test ends."""
    labs: list[Lab] = []

    def build(*clusters: str, behind_nat: tuple[str, ...] = ()) -> Lab:
        lab = Lab(clusters, tmp_path / f"lab{len(labs)}", behind_nat=behind_nat)
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


@pytest.fixture(scope="session")
def gateway_prerequisites() -> None:
    """Fails, never skips, like `lab_prerequisites`; sshd comes from openssh-server."""
    from .gateways import missing_gateway_prerequisites

    missing = missing_gateway_prerequisites()
    if missing:
        pytest.fail(
            "the gateway end-to-end tests need, and this machine lacks:\n  - "
            + "\n  - ".join(missing)
            + "\n(.ci/setup installs the packages; run the tests as root)",
            pytrace=False,
        )


@pytest.fixture
def gateway_lab(gateway_prerequisites: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayLab]:
    """Gateways `a`, `b` and `c` with their own sshd; `ssh` on PATH runs in the controller namespace."""
    with running_lab(["a", "b", "c"], tmp_path / "gateways", monkeypatch) as lab:
        yield lab
