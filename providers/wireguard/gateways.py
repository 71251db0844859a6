"""Gateway clusters: what refresh finds on the live hosts, and what apply changes there.

A cluster with a `gateway` is a live WireGuard host managed over SSH. This module decides what to
read from it and what to push to it, gateway by gateway, `ssh.parallelism` at a time; remote.py
says how on the host, ssh.py carries it. Nothing secret passes through here: the private key is
born on the gateway and the host inserts it into the config itself. Preshared keys of peerings
between gateways are the exception: read from one end (`preshared_keys_all`) or generated, they
pass through memory here on their way into both ends' configs, and are never written or shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from skyplan.sdk import Diagnostic, Reading, ResourceView
from skyplan_wireguard import conf

if TYPE_CHECKING:
    from skyplan_wireguard import remote, ssh

T = TypeVar("T")

KEY_PATH = "/etc/wireguard/{interface}.key"  # remote.WG_DIR


def is_gateway(cluster: ResourceView) -> bool:
    return bool(cluster.attributes.get("gateway"))


def gateway_for(settings: Any, root: Path, cluster: ResourceView) -> ssh.Gateway:
    """The ssh.Gateway of `cluster`: its `gateway` text, the ssh config and timeout of `settings`."""
    from skyplan_wireguard import ssh  # here, not at import: `skyctl get` never needs them

    config = settings.ssh.config
    path = Path(os.path.normpath(root / config)) if config is not None else None
    return ssh.Gateway(cluster.attributes["gateway"], config=path, timeout=settings.ssh.timeout, keep=settings.ssh.keep_connections)


def keep_problem(settings: Any, root: Path) -> str | None:
    """Why connections cannot be kept (provider.ssh.keep_connections), before any connection is
    made: the folder for them is not a private one of this user's, or it is in the workspace."""
    if not settings.ssh.keep_connections:
        return None
    from skyplan_wireguard import kept

    try:
        folder = kept.private_folder()
    except kept.KeptFolderError as exc:
        return str(exc)
    container = kept.inside(folder, root)
    if container is not None:
        # Files of a pull request could plant a socket there, for skyplan to hand to ssh.
        return f"provider.ssh.keep_connections: {folder} is inside {container}, where the workspace is; set XDG_RUNTIME_DIR elsewhere"
    return None


def config_problem(settings: Any, root: Path) -> str | None:
    """Why the configured ssh config cannot be used, before any connection tries it."""
    config = settings.ssh.config
    if config is None:
        return None
    path = Path(os.path.normpath(root / config))
    if not os.fspath(path).startswith(os.path.join(root, "")):
        # Outside the workspace: links.yaml names it, so it is taken as it stands (as output_dir is).
        return None if path.is_file() else f"provider.ssh.config: {config} is not a file (looked for {path})"
    # In the workspace, a repository could plant a symlink where the file should be, for ssh to
    # read whatever it points at: reached as every workspace file is, following no symlink.
    from skyplan.sdk import UnsafePathError, atomic

    try:
        found = atomic.read_bytes(path, root, limit=_SSH_CONFIG_LIMIT)
    except UnsafePathError as exc:
        return f"provider.ssh.config: {exc}"
    except OSError as exc:
        return f"provider.ssh.config: {config} cannot be read: {exc.strerror or exc}"
    return None if found is not None else f"provider.ssh.config: {config} is not a file (looked for {path})"


# An ssh config is a few lines; a larger file named as one is not read whole.
_SSH_CONFIG_LIMIT = 1 << 20


@dataclass(frozen=True)
class Work:
    """What a batch of gateway operations gave: values by cluster, and why others failed."""

    values: dict[str, Any]
    errors: dict[str, ssh.GatewayError]


def run_all(
    conns: ssh.Connections,
    settings: Any,
    root: Path,
    clusters: Iterable[ResourceView],
    fn: Callable[[ssh.Gateway, ResourceView], T],
    refused: list[ssh.HostKeyError] | None = None,
) -> Work:
    """`fn(gateway, cluster)` for each cluster, `parallelism` at a time.

    A refused host key stops whatever has not started yet, in this call and in every later one
    given the same `refused` list: it is never treated as one gateway's trouble only.
    """
    from skyplan_wireguard import ssh  # here, not at import: `skyctl get` never needs them

    clusters = list(clusters)
    by_gateway: dict[int, ResourceView] = {}
    gateways = []
    errors: dict[str, ssh.GatewayError] = {}
    refused = [] if refused is None else refused
    problem = config_problem(settings, root) or keep_problem(settings, root)
    if problem:
        return Work({}, {c.name: ssh.GatewayError(c.attributes["gateway"], problem) for c in clusters})
    for cluster in clusters:
        try:
            gateway = gateway_for(settings, root, cluster)
        except ssh.GatewayError as exc:
            errors[cluster.name] = exc
            continue
        by_gateway[id(gateway)] = cluster
        gateways.append(gateway)

    def one(gateway: ssh.Gateway) -> T:
        if refused:
            raise ssh.HostKeyError(gateway.address, f"not attempted: {refused[0]}")
        try:
            return fn(gateway, by_gateway[id(gateway)])
        except ssh.HostKeyError as exc:
            refused.append(exc)
            raise

    values: dict[str, Any] = {}
    for outcome in conns.run_many(gateways, one, settings.ssh.parallelism):
        name = by_gateway[id(outcome.gateway)].name
        if outcome.ok:
            values[name] = outcome.value
        else:
            assert outcome.error is not None
            errors[name] = outcome.error
    return Work(values, errors)


# -- refresh ------------------------------------------------------------------------------------------


def inspect_all(
    conns, settings, root, clusters: list[ResourceView], salt: str | None = None, salted: Collection[str] | None = None
) -> tuple[dict[str, remote.LiveInterface], list[Diagnostic]]:
    """Each gateway cluster's live interface (its preshared keys as digests with `salt`: of every
    cluster, or of those named in `salted`, the others having no preshared key to compare). An
    unreachable gateway is a warning (the plan goes on from the state); a refused host key is an
    error that stops the plan."""
    from skyplan_wireguard import remote, ssh  # here, not at import: `skyctl get` never needs them

    def one(gateway: ssh.Gateway, cluster: ResourceView) -> remote.LiveInterface:
        given = salt if salted is None or cluster.name in salted else None
        return remote.inspect(conns, gateway, cluster.attributes["interface"], salt=given)

    work = run_all(conns, settings, root, clusters, one)
    diagnostics = []
    for name, error in sorted(work.errors.items()):
        if isinstance(error, ssh.HostKeyError | ssh.GatewayAddressError):
            diagnostics.append(Diagnostic(f"cluster '{name}': {error}"))
        else:
            diagnostics.append(
                Diagnostic(f"cluster '{name}': {error}; it was not refreshed, so the plan assumes it is as the state records", severity="warning")
            )
    return work.values, diagnostics


def cluster_reading(
    cluster: ResourceView,
    expected_conf: conf.ClusterConf,
    live: remote.LiveInterface,
    pending: str | None,
    expected_digests: dict[str, str] | None = None,
) -> tuple[Reading | None, dict[str, dict] | None, str | None]:
    """What differs on `cluster`'s gateway: (reading, peers as found, error).

    The peers as found (by public key, comparable like conf.PeerConf.comparable) are for the
    link readings; None when they are exactly as expected. An error is a key file that holds no key,
    or something other than a file where the config goes. `expected_digests`: by peer public key,
    the digest (live.psk_digests' salt) of the preshared key the peering's other end holds; a
    running key with another digest "differs".
    """
    expected_digests = expected_digests or {}
    name = cluster.name
    where = f"gateway {cluster.attributes['gateway']}"
    interface = cluster.attributes["interface"]
    key_path = KEY_PATH.format(interface=interface)
    recorded = cluster.computed.get("public_key")
    if live.key_problem:
        return None, None, (
            f"cluster '{name}': key file {key_path} on {where} {live.key_problem}. Restore it, or delete it to have "
            f"skyplan plan a new key for the cluster"
        )
    if live.config_problem:
        # Apply could not write the file either (push refuses to replace a folder): stop the plan.
        return None, None, f"cluster '{name}': {live.config_problem} on {where}. Move it away to have skyplan write it again"
    if live.key_public is None:
        reading = Reading(
            cluster.address,
            expected={"key_file": "present"},
            found={"key_file": "missing"},
            replace=True,
            reason=f"key file {key_path} on {where} is missing: a new key must be generated there and every peer updated",
        )
        return reading, None, None
    if recorded is not None and live.key_public != recorded:
        if pending == "replace":
            return None, None, None  # an interrupted replace made this key: the retry keeps it
        reading = Reading(
            cluster.address,
            expected={"key_file_public_key": recorded},
            found={"key_file_public_key": live.key_public},
            conflict=True,
            reason=(
                f"cluster.{name}: key file {key_path} on {where} holds public key {live.key_public}, but the state "
                f"records {recorded} (was the key replaced on the host?). Nothing was changed: to take the "
                f"gateway's key and update every peer, plan with --replace cluster.{name}"
            ),
        )
        return reading, None, None

    want_peers = {peer.public_key: peer.comparable() for peer in expected_conf.peers}
    expected: dict[str, Any] = {}
    found: dict[str, Any] = {}
    # The file on the host as skyplan would write it and the host shows it: no PrivateKey line,
    # and a preshared key wherever one is wanted, "(hidden)" (the values are not compared here).
    written = masked_render(expected_conf)
    # Endpoints come from the file; without a readable one, as expected (the file is the drift).
    file_peers: dict[str, dict] = {key: dict(peer) for key, peer in want_peers.items()}
    if live.config_text is None:
        expected["config_file"], found["config_file"] = "present", "missing"
    elif live.config_text != written:
        parsed = conf.parse(live.config_text)
        file_peers = parsed.peers
        interface_fields = {k: v for k, v in parsed.interface.items() if k != "public_key"}
        expected["config_file"] = {
            "interface": {k: v for k, v in expected_conf.interface(recorded).items() if k != "public_key"},
            "other_directives": {},
            "unmanaged_peers": [],
        }
        found["config_file"] = {
            "interface": interface_fields,
            "other_directives": parsed.extra,
            "unmanaged_peers": sorted(k for k in parsed.peers if k not in want_peers),
        }
    if live.config_text is not None and live.config_key_public != live.key_public:
        expected["config_file_key"], found["config_file_key"] = "the key file's", "another key"

    if not live.up:
        # The cluster's own reading repairs it; its links are not drift of their own.
        expected["running"], found["running"] = "up", "down"
        peers_found = None
    else:
        routes = sorted({ip for peer in expected_conf.peers for ip in peer.allowed_ips})
        expected_live = {
            "public_key": recorded,
            "listen_port": expected_conf.listen_port,
            "addresses": [expected_conf.address],
            "routes": routes,
            "unmanaged_peers": [],
        }
        found_live = {
            "public_key": live.public_key,
            "listen_port": live.listen_port,
            "addresses": sorted(live.addresses),
            "routes": sorted(live.routes),
            "unmanaged_peers": sorted(k for k in live.peers if k not in want_peers),
        }
        if expected_conf.mtu is not None:
            expected_live["mtu"], found_live["mtu"] = expected_conf.mtu, live.mtu
        versions = forward_versions(expected_conf)
        if versions:
            # A transit hub forwards; a host that forwards anyway is no drift of anyone's.
            shown = {4: ("ipv4", live.forwarding.ipv4), 6: ("ipv6", live.forwarding.ipv6)}
            expected_live["forwarding"] = {shown[v][0]: "on" for v in sorted(versions)}
            found_live["forwarding"] = {shown[v][0]: _switch(shown[v][1]) for v in sorted(versions)}
        if expected_live != found_live:
            expected["running"], found["running"] = expected_live, found_live
        peers_found = {}
        for key, peer in live.peers.items():
            # The endpoint from the file: the live one follows a roaming peer, which is no drift.
            endpoint = (file_peers.get(key) or {}).get("endpoint")
            peers_found[key] = {
                "public_key": key,
                "endpoint": endpoint,
                "allowed_ips": sorted(peer.allowed_ips),
                "persistent_keepalive": peer.persistent_keepalive,
            }
            # Presence only, as the host shows it: the value never leaves it on refresh. Both the
            # running peer and the file need it (the file is what the next `up` brings back).
            in_file = "preshared_key" in (file_peers.get(key) or {})
            if peer.has_preshared_key or in_file:
                peers_found[key]["preshared_key"] = (
                    "present" if peer.has_preshared_key and in_file else "not in the file" if peer.has_preshared_key else "not on the running interface"
                )
                other_end, here = expected_digests.get(key), live.psk_digests.get(key)
                if peer.has_preshared_key and other_end is not None and here is not None and here != other_end:
                    peers_found[key]["preshared_key"] = "differs"
    reading = Reading(cluster.address, expected, found, reason=f"the interface on {where} differs") if expected != found else None
    if peers_found is None or all(peers_found.get(key) == peer for key, peer in want_peers.items()):
        return reading, None, None
    return reading, peers_found, None


# A canonical key that only ever stands in for a preshared key in text that is masked at once,
# as the host masks its file: never written, never sent (conf.render refuses PSK_PLACEHOLDER).
_HIDDEN_STAND_IN = "A" * 42 + "E="
_PSK_LINE = "PresharedKey = "


def masked_render(cluster_conf: conf.ClusterConf) -> str:
    """`cluster_conf` rendered as a gateway's file reads through inspect: no PrivateKey line and
    every PresharedKey "(hidden)", whatever the key's value (known, or PSK_PLACEHOLDER)."""
    peers = tuple(
        peer._replace(preshared_key=_HIDDEN_STAND_IN) if peer.preshared_key is not None else peer for peer in cluster_conf.peers
    )
    text = conf.render(replace(cluster_conf, peers=peers), None)
    if _PSK_LINE not in text:
        return text
    return "".join(
        _PSK_LINE + "(hidden)\n" if line.startswith(_PSK_LINE) else line for line in text.splitlines(keepends=True)
    )


def forward_versions(cluster_conf: conf.ClusterConf) -> frozenset[int]:
    """The IP versions a transit hub forwards: those of its file's PostUp line."""
    command = cluster_conf.forward_command
    if command is None:
        return frozenset()
    return frozenset({4, 6}) if command == conf.FORWARD_BOTH else frozenset({4})


def _switch(value: bool | None) -> str:
    return "unknown" if value is None else "on" if value else "off"


# -- apply --------------------------------------------------------------------------------------------


def reach_all(conns, settings, root, clusters: list[ResourceView], refused=None) -> Work:
    """Connect to each cluster's gateway, its host key verified, and run nothing there: the later
    operations reuse the connection, so this costs no command and no extra login."""
    return run_all(conns, settings, root, clusters, lambda gateway, cluster: conns.connect(gateway), refused)


def ensure_keys(conns, settings, root, wanted: dict[str, tuple[ResourceView, str | None]], refused=None) -> Work:
    """Each gateway's public key, its private key generated there when it has none (or, for a
    replace, when the one there is still the key being replaced): `wanted` maps a cluster to its
    view and the public key it replaces. A retry after a crash finds the key the first run made."""
    from skyplan_wireguard import remote  # here, not at import: `skyctl get` never needs them

    views = [view for view, _ in wanted.values()]

    def one(gateway: ssh.Gateway, cluster: ResourceView) -> str:
        return remote.ensure_key(conns, gateway, cluster.attributes["interface"], replacing=wanted[cluster.name][1])

    return run_all(conns, settings, root, views, one, refused)


def unique_keys(answers: dict[str, str], world: dict[str, ResourceView], failed: dict[str, str]) -> dict[str, str]:
    """The public keys gateways answered, without any that another cluster has (put in `failed`).

    A gateway is a host skyplan does not control: one that answers with another cluster's public
    key would have every common peer's file hold that key twice, and wg would merge the two
    peers, taking the other cluster's tunnels down. (Two clusters on one host and interface
    share a key file the same way.)
    """
    owners = {
        view.computed["public_key"]: view.name
        for view in world.values()
        if view.type == "cluster" and view.computed.get("public_key") and view.name not in answers
    }
    taken = {}
    for name, public in sorted(answers.items()):
        owner = owners.get(public)
        if owner is None:
            owners[public], taken[name] = name, public
            continue
        where = world.get(f"cluster.{name}")
        gateway = where.attributes.get("gateway") if where is not None else "?"
        failed[name] = (
            f"gateway {gateway}: its key has the public key of cluster '{owner}'; it was not taken, since a key "
            f"belongs to one cluster (is it the host and interface of cluster '{owner}' too?)"
        )
    return taken


def routes_of(cluster_conf: conf.ClusterConf) -> list[str]:
    """One route per AllowedIPs entry of every peer, as wg-quick adds them."""
    return sorted({ip for peer in cluster_conf.peers for ip in peer.allowed_ips})


def push_all(conns, settings, root, files: dict[str, tuple[ResourceView, conf.ClusterConf]], refused=None) -> Work:
    """Write each gateway's config and bring its interface to it, in place."""
    from skyplan_wireguard import remote  # here, not at import: `skyctl get` never needs them

    def one(gateway: ssh.Gateway, cluster: ResourceView) -> None:
        cluster_conf = files[cluster.name][1]
        remote.push(
            conns,
            gateway,
            cluster.attributes["interface"],
            conf.render(cluster_conf, None),
            addresses=[cluster_conf.address],
            mtu=cluster_conf.mtu,
            routes=routes_of(cluster_conf),
            public_key=cluster.computed["public_key"],
            forward=forward_versions(cluster_conf),
        )

    return run_all(conns, settings, root, [view for view, _ in files.values()], one, refused)


def preshared_keys_all(conns, settings, root, clusters: list[ResourceView], refused=None) -> Work:
    """Each gateway's peers' preshared keys (peer public key -> key), from its running interface
    or its file. Secret values: for the configs of the same peerings' other ends, nothing else."""
    from skyplan_wireguard import remote  # here, not at import: `skyctl get` never needs them

    return run_all(
        conns, settings, root, clusters, lambda gateway, cluster: remote.preshared_keys(conns, gateway, cluster.attributes["interface"]), refused
    )


def teardown_all(conns, settings, root, clusters: list[ResourceView], refused=None) -> Work:
    """Take each gateway's interface down and remove its config and key."""
    from skyplan_wireguard import remote  # here, not at import: `skyctl get` never needs them

    return run_all(
        conns, settings, root, clusters, lambda gateway, cluster: remote.teardown(conns, gateway, cluster.attributes["interface"]), refused
    )
