"""Overlay address allocation: stable across applies, lowest free address for newcomers."""

from __future__ import annotations

import ipaddress
from functools import lru_cache


def usable_count(pool: str) -> int:
    network = ipaddress.ip_network(pool)
    first, last = _bounds(network)
    return max(0, last - first + 1)


@lru_cache(maxsize=64)
def _pool(text: str):
    # Parsed once per pool, not once per cluster: every cluster of a workspace names the same one.
    network = ipaddress.ip_network(text)
    return (network, *_bounds(network))


def _bounds(network) -> tuple[int, int]:
    start, end = int(network.network_address), int(network.broadcast_address)
    # IPv4 networks bigger than /31 keep their network and broadcast addresses out of use;
    # IPv6 keeps its all-zeros address for the Subnet-Router anycast (RFC 4291).
    if network.version == 4 and network.prefixlen < 31:
        return start + 1, end - 1
    if network.version == 6 and network.prefixlen < 127:
        return start + 1, end
    return start, end


def allocate(pools: dict[str, str], previous: dict[str, str | None], pinned: dict[str, str] | None = None) -> dict[str, str]:
    """Give every cluster (name -> its pool) an address: its pinned one first, else its previous
    one while that still fits and no pin takes it, else the lowest free one.

    Conflicts are settled by name order, so the result does not depend on input order. A pin
    outside its pool, or taken by another pin, is a ValueError (validation refuses both first).
    """
    taken: set[int] = set()
    result: dict[str, str] = {}
    for name in sorted(pinned or {}):
        if name not in pools:
            continue
        network, first, last = _pool(pools[name])
        address = ipaddress.ip_address(pinned[name])
        if address.version != network.version or not first <= int(address) <= last:
            raise ValueError(f"cluster '{name}': pinned address {address} is not a usable address of the pool {network}")
        if int(address) in taken:
            raise ValueError(f"cluster '{name}': pinned address {address} is pinned by another cluster too")
        taken.add(int(address))
        result[name] = str(address)
    for name in sorted(pools):
        old = previous.get(name)
        if old is None or name in result:
            continue
        network, first, last = _pool(pools[name])
        address = ipaddress.ip_address(old)
        if address.version == network.version and first <= int(address) <= last and int(address) not in taken:
            taken.add(int(address))
            result[name] = str(address)
    cursors: dict[str, int] = {}
    for name in sorted(pools):
        if name in result:
            continue
        network, first, last = _pool(pools[name])
        candidate = cursors.get(pools[name], first)
        while candidate in taken:
            candidate += 1
        if candidate > last:
            raise ValueError(f"address pool {pools[name]} is full; cluster '{name}' gets no address")
        taken.add(candidate)
        cursors[pools[name]] = candidate + 1
        result[name] = str(ipaddress.ip_address(candidate))
    return result
