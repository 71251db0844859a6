"""The provider modes the conformance suite runs against, and how each one's world is disturbed.

A mode is a provider as it would be configured in one way of working (WireGuard writing local
files today; over SSH to a gateway next), plus the two things only the mode knows how to do to
its own world: make it drift (something changed behind skyplan's back) and damage it (something
that cannot be read at all). Adding a mode is adding an entry to MODES.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skyplan.sdk import Provider, ResourceView, WorkspacePaths


@dataclass(frozen=True)
class Mode:
    id: str
    # A provider for a fresh, empty workspace at this folder.
    make: Callable[[Path], Provider]
    # Change the real form of this applied cluster so that `read` must report it.
    drift: Callable[[Provider, ResourceView], None]
    # Ways to make this applied cluster's real form unreadable; `read` must say so, not raise.
    damages: dict[str, Callable[[Provider, ResourceView], None]]


def _paths(root: Path) -> WorkspacePaths:
    return WorkspacePaths(root=root, data=root / ".skyplan")


# -- WireGuard, local files ------------------------------------------------------------------------


def _wireguard_local(root: Path) -> Provider:
    from skyplan_wireguard import WireGuardProvider
    from skyplan_wireguard.settings import WireGuardSettings

    return WireGuardProvider(WireGuardSettings(), _paths(root))


def _wireguard_config(provider: Provider, cluster: ResourceView) -> Path:
    return provider.config_path(cluster)  # type: ignore[attr-defined]


def _wireguard_drift(provider: Provider, cluster: ResourceView) -> None:
    path = _wireguard_config(provider, cluster)
    path.write_text(path.read_text() + "\n[Peer]\nPublicKey = " + "C" * 43 + "=\nAllowedIPs = 0.0.0.0/0\n")


def _wireguard_garbled_key(provider: Provider, cluster: ResourceView) -> None:
    (provider.paths.keys / f"{cluster.name}.key").write_text("not a key\n")


def _wireguard_config_is_a_folder(provider: Provider, cluster: ResourceView) -> None:
    path = _wireguard_config(provider, cluster)
    path.unlink()
    path.mkdir()


def _wireguard_config_is_a_symlink(provider: Provider, cluster: ResourceView) -> None:
    path = _wireguard_config(provider, cluster)
    elsewhere = provider.paths.root.parent / f"elsewhere-{cluster.name}.conf"
    os.replace(path, elsewhere)
    path.symlink_to(elsewhere)


WIREGUARD_LOCAL = Mode(
    id="wireguard-local",
    make=_wireguard_local,
    drift=_wireguard_drift,
    damages={
        "garbled key file": _wireguard_garbled_key,
        "config is a folder": _wireguard_config_is_a_folder,
        "config is a symlink": _wireguard_config_is_a_symlink,
    },
)


# -- the minimal example provider (examples/provider-minimal), loaded from its file ----------------

_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "provider-minimal" / "skyplan_minimal.py"


def _minimal(root: Path) -> Provider:
    module = sys.modules.get("skyplan_minimal")
    if module is None:
        spec = importlib.util.spec_from_file_location("skyplan_minimal", _EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["skyplan_minimal"] = module
        spec.loader.exec_module(module)
    return module.MinimalProvider(module.MinimalSettings(), _paths(root))


def _minimal_file(provider: Provider, cluster: ResourceView) -> Path:
    return provider.path(cluster.name)  # type: ignore[attr-defined]


def _minimal_drift(provider: Provider, cluster: ResourceView) -> None:
    _minimal_file(provider, cluster).write_text('{"cluster": "%s", "peers": ["stranger"]}\n' % cluster.name)


def _minimal_not_json(provider: Provider, cluster: ResourceView) -> None:
    _minimal_file(provider, cluster).write_text("{not json")


MINIMAL = Mode(id="minimal-example", make=_minimal, drift=_minimal_drift, damages={"not JSON": _minimal_not_json})

# The SSH mode of the gateway provider joins here.
MODES = [WIREGUARD_LOCAL, MINIMAL]
