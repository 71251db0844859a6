"""The provider modes the conformance suite runs against, and how each one's world is disturbed.

A mode is a provider as it would be configured in one way of working (WireGuard writing local
files; WireGuard over SSH to live gateways), plus the two things only the mode knows how to do to
its own world: make it drift (something changed behind skyplan's back) and damage it (something
that cannot be read at all). Adding a mode is adding an entry to MODES.

The SSH mode is real: its gateways are a `GatewayLab` (tests/e2e/gateways.py) of namespaces with
their own sshd, started on first use and ended by `close`. Like the end-to-end tests, it needs
root and fails, never skips, where the lab cannot be built.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
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
    # What links.yaml says of each cluster in this mode beyond name, endpoint and subnets.
    cluster_fields: Callable[[str], dict] = field(default=lambda name: {})
    # Ends what the mode started for its worlds (a lab of gateways); called once it is done.
    close: Callable[[], None] = field(default=lambda: None)


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

# -- WireGuard over SSH: live gateways in a lab of namespaces ----------------------------------------

_GATEWAYS = ("a", "b", "c")  # the clusters of the conformance suite, each with its own gateway


class _Lab:
    """The one lab the SSH mode's worlds live in, with the environment it needs while it runs."""

    lab = None  # GatewayLab, once started
    saved_environment: dict[str, str | None] = {}

    @classmethod
    def get(cls):
        if cls.lab is None:
            from tests.e2e.gateways import GatewayLab

            workdir = Path(tempfile.mkdtemp(prefix="skyplan-conformance-"))
            lab = GatewayLab(list(_GATEWAYS), workdir)
            try:
                lab.start()
            except BaseException:
                shutil.rmtree(workdir, ignore_errors=True)
                raise
            cls.lab = lab
            # skyplan's `ssh` must run in the controller's namespace; the user's agent plays no part.
            cls.saved_environment = {name: os.environ.get(name) for name in ("PATH", "SSH_AUTH_SOCK")}
            os.environ["PATH"] = f"{lab.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
            os.environ.pop("SSH_AUTH_SOCK", None)
        return cls.lab

    @classmethod
    def close(cls) -> None:
        lab, cls.lab = cls.lab, None
        if lab is None:
            return
        for name, value in cls.saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        try:
            lab.close()
        finally:
            shutil.rmtree(lab.workdir, ignore_errors=True)


def _wireguard_ssh(root: Path) -> Provider:
    from skyplan_wireguard import WireGuardProvider
    from skyplan_wireguard.settings import WireGuardSettings

    lab = _Lab.get()
    lab.reset()  # a fresh world: gateways with no interface, no key, no config
    settings = WireGuardSettings.model_validate({"ssh": {"config": str(lab.ssh_config), "timeout": "20s"}})
    return WireGuardProvider(settings, _paths(root))


def _on_gateway(cluster: ResourceView, script: str) -> None:
    """Run `script` as root on the cluster's gateway, from outside SSH: what a person there would do."""
    interface = cluster.attributes["interface"]
    _Lab.get().run(cluster.name, ["sh", "-c", script, "sh", interface, f"/etc/wireguard/{interface}"])


def _ssh_drift(provider: Provider, cluster: ResourceView) -> None:
    # A peer added by hand to the running interface; the file on the gateway is left as it was.
    _on_gateway(cluster, 'wg set "$1" peer "$(wg genkey | wg pubkey)" allowed-ips 10.99.0.0/24')


def _ssh_garbled_key(provider: Provider, cluster: ResourceView) -> None:
    _on_gateway(cluster, 'printf "not a key\\n" > "$2.key"')


def _ssh_config_is_a_folder(provider: Provider, cluster: ResourceView) -> None:
    _on_gateway(cluster, 'rm "$2.conf" && mkdir "$2.conf"')


def _ssh_host_key_changed(provider: Provider, cluster: ResourceView) -> None:
    # The gateway's address answers with another host's key: what a man in the middle shows.
    lab = _Lab.get()
    impostor = next(g for g in _GATEWAYS if g != cluster.name)
    lines = [
        f"{lab.underlay[g]} {lab.host_key_line(impostor).split(' ', 1)[1]}" if g == cluster.name else lab.host_key_line(g)
        for g in _GATEWAYS
    ]
    lab.known_hosts.write_text("".join(line + "\n" for line in lines))


WIREGUARD_SSH = Mode(
    id="wireguard-ssh",
    make=_wireguard_ssh,
    drift=_ssh_drift,
    damages={
        "garbled key file on the gateway": _ssh_garbled_key,
        "config on the gateway is a folder": _ssh_config_is_a_folder,
        "host key changed": _ssh_host_key_changed,
    },
    cluster_fields=lambda name: {"gateway": name},  # a Host alias of the lab's ssh config
    close=_Lab.close,
)

MODES = [WIREGUARD_LOCAL, MINIMAL, WIREGUARD_SSH]
