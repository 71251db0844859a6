"""The WireGuard provider's own rules of links.yaml: external peers, pinned addresses, keepalives.

Each diagnostic carries the document path of the key it is about, so that the core locates it
(file:line:col) like its own rules.
"""

from __future__ import annotations

import ipaddress

from skyplan.sdk import Diagnostic, ResourceView
from skyplan_wireguard import addresses
from skyplan_wireguard.arguments import address_text, public_key_text

# What skyplan would write into an external peer's own config, which it does not write.
_NOT_FOR_EXTERNAL = ("listen_port", "mtu", "persistent_keepalive")


def check_clusters(clusters: list[ResourceView], settings) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    pool = ipaddress.ip_network(settings.address_pool)
    first, last = addresses._bounds(pool)
    pins: dict[int, int] = {}  # pinned address -> index of the first cluster pinning it
    inherit_nat: list[str] = []  # clusters behind NAT that take keepalive 0 from the provider
    for i, cluster in enumerate(clusters):
        arguments = cluster.attributes
        external = "public_key" in arguments
        if external:
            try:
                public_key_text(arguments["public_key"])
            except ValueError:
                found.append(
                    Diagnostic(
                        f"clusters[{i}].public_key: not a WireGuard public key (44 characters of canonical base64, "
                        "as `wg pubkey` prints it)",
                        path=("clusters", i, "public_key"),
                    )
                )
            if "gateway" in arguments:
                found.append(
                    Diagnostic(
                        f"clusters[{i}].gateway: an external peer (public_key) is managed elsewhere and cannot have a gateway",
                        path=("clusters", i, "gateway"),
                    )
                )
            for name in _NOT_FOR_EXTERNAL:
                if name in arguments:
                    found.append(
                        Diagnostic(
                            f"clusters[{i}].{name}: an external peer (public_key) is configured elsewhere: skyplan writes "
                            f"no config for it, so its {name} would have no effect",
                            path=("clusters", i, name),
                        )
                    )
        if "address" in arguments:
            found.extend(_pin_problems(i, clusters, arguments["address"], pool, first, last, pins))
        if "endpoint" not in arguments and not external:
            if "persistent_keepalive" in arguments:
                if arguments["persistent_keepalive"] == 0:
                    found.append(
                        Diagnostic(
                            f"clusters[{i}].persistent_keepalive: cluster '{cluster.name}' has no endpoint (it is behind "
                            "NAT and only dials out), so it must keep its NAT mapping alive: 0 turns keepalives off",
                            path=("clusters", i, "persistent_keepalive"),
                        )
                    )
            elif settings.persistent_keepalive == 0:
                inherit_nat.append(cluster.name)
    if inherit_nat:
        names = ", ".join(f"'{name}'" for name in inherit_nat)
        which = f"cluster {names} has" if len(inherit_nat) == 1 else f"clusters {names} have"
        found.append(
            Diagnostic(
                f"provider.persistent_keepalive: {which} no endpoint (behind NAT, dialing out only) and must keep "
                "the NAT mapping alive, but 0 turns keepalives off; set it here or on "
                + ("that cluster" if len(inherit_nat) == 1 else "those clusters"),
                path=("provider", "persistent_keepalive"),
            )
        )
    return found


def _pin_problems(i: int, clusters, text, pool, first: int, last: int, pins: dict[int, int]) -> list[Diagnostic]:
    path = ("clusters", i, "address")
    where = f"clusters[{i}].address"
    if not isinstance(text, str):
        return []  # the core's model refused it
    try:
        address_text(text)
    except ValueError as exc:
        hint = "without a prefix length" if "/" in text else f"as one overlay address, such as {ipaddress.ip_address(first)}"
        return [Diagnostic(f"{where}: {exc}; write it {hint}", path=path)]
    address = ipaddress.ip_address(text)
    if address.version != pool.version or not first <= int(address) <= last:
        return [Diagnostic(f"{where}: {text} is not a usable address of the address pool {pool}", path=path)]
    if int(address) in pins:
        j = pins[int(address)]
        return [
            Diagnostic(
                f"{where}: {text} is already pinned by clusters[{j}] ('{clusters[j].name}'); each cluster needs its own address",
                path=path,
            )
        ]
    pins[int(address)] = i
    return []


def check_links(clusters: list[ResourceView], links: list[ResourceView]) -> list[Diagnostic]:
    external = {c.name for c in clusters if "public_key" in c.attributes}
    found: list[Diagnostic] = []
    if len(external) < 2:
        return found
    for i, link in enumerate(links):
        source, target = link.attributes["source"], link.attributes["target"]
        if source != target and source in external and target in external:
            found.append(
                Diagnostic(
                    f"links[{i}]: clusters '{source}' and '{target}' are both external peers (public_key): skyplan "
                    "manages neither end, so it can write this link nowhere",
                    path=("links", i),
                )
            )
    return found
