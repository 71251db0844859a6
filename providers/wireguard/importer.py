"""`skyplan import` for WireGuard: existing wg-quick files become clusters, links and the key store.

Each file is one cluster. A peering that both files declare becomes a link; a peer whose key no
file holds becomes an external peer (`public_key`). What the files say about a cluster is
gathered from everywhere it appears: its own file gives its key, overlay address, port, MTU and
keepalive; its peers' files give its endpoint (they dial it) and its subnets (the AllowedIPs
beyond its overlay address). Where the files disagree in a way skyplan cannot write (two
endpoints, two preshared keys for one peering, one address for two clusters) import stops with a
located error; what the files hold that skyplan does not write (PostUp, DNS, a route to the whole
overlay through one peer, …) is named per file and line and left behind.

Live hosts (`--gateway`, gateway_import.py) take part as files do, read where they run: their
private keys stay there, and so do preshared keys between them (compared by salted digest).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyplan.sdk import (
    NAME_PATTERN,
    Diagnostic,
    ImportRequest,
    ImportResponse,
    UnsafePathError,
    WorkspacePaths,
    atomic,
    parse_endpoint,
)
from skyplan_wireguard import addresses, gateway_import, psk, wgquick
from skyplan_wireguard.settings import INTERFACE_PATTERN, WireGuardSettings

_NAME = re.compile(NAME_PATTERN)
_INTERFACE = re.compile(INTERFACE_PATTERN)
# What a cluster that only dials out keeps its NAT mapping alive with, when its file sets nothing.
NAT_KEEPALIVE = 25


@dataclass
class _Cluster:
    """One cluster as the files describe it, gathered while reading them."""

    name: str
    public_key: str
    file: wgquick.WgQuickFile | None = None  # None: an external peer
    address: str | None = None
    address_at: str = ""  # file:line that gave the address
    endpoint: str | None = None
    endpoint_at: str = ""
    subnets: list[str] = field(default_factory=list)
    keepalive: int = 0
    comments: list[str] = field(default_factory=list)
    seen_at: tuple[str, int] | None = None  # an external peer: the first [Peer] that names it


@dataclass(frozen=True)
class _Entry:
    """A [Peer] of `owner`'s file that is carried: the peering to `peer`."""

    owner: str
    peer: str
    section: wgquick.Peer


def _at(display: str, line: int | None) -> str:
    return f"{display}:{line}" if line is not None else display


class _Import:
    def __init__(self, request: ImportRequest):
        self.request = request
        self.errors: list[Diagnostic] = []
        self.skipped: list[Diagnostic] = []
        # One salt for every host of this import: equal digests are equal preshared keys.
        self.salt = secrets.token_hex(16)
        self.hosts: list[gateway_import.HostReading] = []

    def _interface(self, files: list[tuple[str, wgquick.WgQuickFile]]) -> str:
        """The interface every cluster has: --interface, else the files' shared name, else
        wg-quick's usual wg0 (a hand-made host's) when hosts are read, else skyplan's default."""
        given = self.request.settings.get("interface")
        if given is not None:
            return given
        named = _interface_name(files)
        if named is not None:
            return named
        return "wg0" if self.request.hosts else WireGuardSettings().interface

    def _adopt_keys(self, conns, written: list[Path]) -> None:
        """The hosts' key files, made on each host from the key it runs; the local files go again
        if any host fails."""
        copied, problems = gateway_import.adopt_keys(conns, self.request, self.interface, self.hosts)
        self.errors.extend(problems)
        if problems:
            _remove_all(written, self.request.write_to.root)
            if copied:
                self.errors.append(
                    Diagnostic(
                        "the key files made on " + ", ".join(copied) + " hold the key each interface runs; they are left there",
                        severity="warning",
                    )
                )

    def error(self, display: str, line: int | None, message: str) -> None:
        self.errors.append(Diagnostic(message, file=display, line=line))

    def skip(self, display: str, line: int | None, message: str) -> None:
        self.skipped.append(Diagnostic(message, severity="warning", file=display, line=line))

    # -- the whole run -------------------------------------------------------------------------

    def run(self) -> ImportResponse:
        if not self.request.hosts:
            return self._run(None)
        from skyplan_wireguard import ssh

        with ssh.Connections() as conns:
            return self._run(conns)

    def _run(self, conns) -> ImportResponse:
        files: list[tuple[str, wgquick.WgQuickFile]] = []
        for source in self.request.sources:
            parsed, problems = wgquick.read(source.text, source.display)
            self.errors.extend(problems)
            if parsed is not None:
                files.append((source.name, parsed))
        if self.request.hosts:
            self.interface = self._interface(files)
            self.hosts, problems = gateway_import.read_hosts(conns, self.request, self.interface, self.salt)
            self.errors.extend(problems)
            for reading in self.hosts:
                files.append((reading.host.name, reading.parsed))
                self.skipped.extend(reading.parsed.notes)
        if self.errors:
            return ImportResponse(diagnostics=self.errors)
        clusters = self._clusters(files)
        if self.errors:
            return ImportResponse(diagnostics=self.errors)
        pool = self._pool(clusters)
        if pool is None:
            return ImportResponse(diagnostics=self.errors)
        self._own_addresses(clusters, pool)
        entries, externals = self._peerings(clusters)
        self._external_names(clusters, externals)
        self._peer_facts(clusters, entries, pool)
        entries = self._dialable(clusters, entries)
        links = self._links(clusters, entries)
        if self.errors:
            return ImportResponse(diagnostics=self.errors)
        computed = self._computed(clusters, pool)
        if computed is None:
            return ImportResponse(diagnostics=self.errors)
        document = self._document(files, clusters, links, pool)
        response = ImportResponse(document=document, computed=computed, skipped=self.skipped)
        if self.request.write_to is not None:
            written = self._write(self.request.write_to, clusters, links)
            if not self.errors and self.hosts:
                self._adopt_keys(conns, written)
            if self.errors:
                return ImportResponse(diagnostics=self.errors)
            response = ImportResponse(document=document, computed=computed, skipped=self.skipped, written=written)
        return response

    # -- clusters from files ---------------------------------------------------------------------

    def _clusters(self, files: list[tuple[str, wgquick.WgQuickFile]]) -> dict[str, _Cluster]:
        clusters: dict[str, _Cluster] = {}
        by_key: dict[str, wgquick.WgQuickFile] = {}
        for name, parsed in files:
            if name in clusters:
                first = clusters[name].file
                self.error(parsed.display, None, f"names cluster '{name}' too (as {first.display if first else 'another file'} does)")
                continue
            if parsed.public_key in by_key:
                first = by_key[parsed.public_key]
                self.error(
                    parsed.display, parsed.private_key_line,
                    f"PrivateKey is the same key as in {first.display}: two clusters cannot share one interface key",
                )
                continue
            by_key[parsed.public_key] = parsed
            clusters[name] = _Cluster(name, parsed.public_key, parsed)
        return clusters

    def _pool(self, clusters: dict[str, _Cluster]):
        """The address pool: the one asked for, else the network every Address prefix agrees on,
        else the smallest network whose usable addresses hold every overlay address."""
        given = self.request.settings.get("address_pool")
        if given is not None:
            try:
                return ipaddress.ip_network(given, strict=True)
            except ValueError as exc:
                self.error("--address-pool", None, f"{given!r} is not a network in CIDR form: {exc}")
                return None
        firsts = [c.file.addresses[0] for c in clusters.values() if c.file is not None and c.file.addresses]
        if not firsts:
            self.error("import", None, "no file has an Address")
            return None
        versions = {address.version for address, _ in firsts}
        if len(versions) > 1:
            self.error("import", None, "the files' first Address lines mix IPv4 and IPv6: give the pool with --address-pool")
            return None
        networks = {address.network for address, _ in firsts}
        if len(networks) == 1:
            network = next(iter(networks))
            if network.prefixlen < network.max_prefixlen - 1:
                return network
        return _smallest_holding([int(address.ip) for address, _ in firsts], next(iter(versions)))

    def _own_addresses(self, clusters: dict[str, _Cluster], pool) -> None:
        """Each file's overlay address: its first Address inside the pool; others are named."""
        taken: dict[str, str] = {}
        for cluster in clusters.values():
            parsed = cluster.file
            assert parsed is not None
            inside = [(a, n) for a, n in parsed.addresses if a.version == pool.version and _usable(pool, a.ip)]
            if not inside:
                same = [(a, n) for a, n in parsed.addresses if a.version == pool.version]
                if same:
                    self.error(parsed.display, same[0][1], f"Address {same[0][0].ip} is outside the address pool {pool}")
                else:
                    self.error(parsed.display, parsed.interface_line, f"[Interface] has no Address in the address pool {pool}")
                continue
            address, line = inside[0]
            for other, other_line in parsed.addresses:
                if (other, other_line) != (address, line):
                    self.skip(
                        parsed.display, other_line,
                        f"Address {other} is not carried: skyplan gives each cluster one overlay address, from the pool {pool}",
                    )
            text = str(address.ip)
            if text in taken:
                self.error(parsed.display, line, f"Address {text} is the overlay address of {taken[text]} too")
                continue
            taken[text] = _at(parsed.display, line)
            cluster.address, cluster.address_at = text, _at(parsed.display, line)
            if address.network.prefixlen != address.max_prefixlen:
                self.skip(
                    parsed.display, line,
                    f"Address {address} is carried as {text}/{address.max_prefixlen}: skyplan routes each peer by its AllowedIPs",
                )

    # -- peerings --------------------------------------------------------------------------------

    def _peerings(self, clusters: dict[str, _Cluster]) -> tuple[list[_Entry], dict[str, _Cluster]]:
        """The [Peer] entries that are carried, and the external peers they name (by key)."""
        by_key = {c.public_key: c.name for c in clusters.values()}
        declared: dict[tuple[str, str], wgquick.Peer] = {}
        externals: dict[str, _Cluster] = {}
        external_entries: list[tuple[str, wgquick.Peer]] = []
        for cluster in clusters.values():
            assert cluster.file is not None
            for peer in cluster.file.peers:
                other = by_key.get(peer.public_key)
                if other is None:
                    external_entries.append((cluster.name, peer))
                    if peer.public_key not in externals:
                        externals[peer.public_key] = _Cluster("", peer.public_key)
                    externals[peer.public_key].comments.extend(peer.comments)
                else:
                    declared[(cluster.name, other)] = peer
        entries: list[_Entry] = []
        for (owner, other), peer in declared.items():
            display = clusters[owner].file.display  # type: ignore[union-attr]
            if (other, owner) not in declared:
                back = clusters[other].file.display  # type: ignore[union-attr]
                self.skip(
                    display, peer.line,
                    f"[Peer] {other} is not carried: {back} has no [Peer] for {owner}; skyplan joins two clusters only "
                    "when both files declare the peering",
                )
                continue
            entries.append(_Entry(owner, other, peer))
        for owner, peer in external_entries:
            external = externals[peer.public_key]
            if external.seen_at is None:
                external.seen_at = (clusters[owner].file.display, peer.line)  # type: ignore[union-attr]
            entries.append(_Entry(owner, peer.public_key, peer))
        return entries, externals

    def _dialable(self, clusters: dict[str, _Cluster], entries: list[_Entry]) -> list[_Entry]:
        """The entries of peerings one end of which can be dialled: a link needs one. Neither end
        having an endpoint anywhere, the peering never starts; it is named and left behind, and an
        external peer left with no peering goes with it."""
        kept = []
        for entry in entries:
            if clusters[entry.owner].endpoint is None and clusters[entry.peer].endpoint is None:
                self.skip(
                    clusters[entry.owner].file.display, entry.section.line,  # type: ignore[union-attr]
                    f"[Peer] {entry.peer} is not carried: no file has an Endpoint for either '{entry.owner}' or "
                    f"'{entry.peer}', so neither can dial the other",
                )
                continue
            kept.append(entry)
        joined = {e.owner for e in kept} | {e.peer for e in kept}
        for name in [n for n, c in clusters.items() if c.file is None and n not in joined]:
            del clusters[name]
        return kept

    def _external_names(self, clusters: dict[str, _Cluster], externals: dict[str, _Cluster]) -> None:
        """External peers join `clusters`, each named by a comment of its [Peer] when one is a
        valid, unused name (`# partner`, wg-meshconf's `# Name: partner`), else after its key."""
        used = set(clusters)
        for key, external in externals.items():
            name = None
            for comment in external.comments:
                candidate = re.sub(r"^name\s*[:=]\s*", "", comment.strip(), flags=re.IGNORECASE)
                if _NAME.fullmatch(candidate) and candidate not in used:
                    name = candidate
                    break
            if name is None:
                name = "peer-" + hashlib.sha256(key.encode("ascii")).hexdigest()[:8]
            used.add(name)
            external.name = name
            clusters[name] = external
        self._external_by_key = {key: external.name for key, external in externals.items()}

    def _peer_facts(self, clusters: dict[str, _Cluster], entries: list[_Entry], pool) -> None:
        """Endpoints, subnets and external addresses, from the entries that name each cluster."""
        resolved: list[_Entry] = []
        for entry in entries:
            peer = self._external_by_key.get(entry.peer, entry.peer)
            resolved.append(_Entry(entry.owner, peer, entry.section))
        entries[:] = resolved
        by_peer: dict[str, list[_Entry]] = {}
        for entry in entries:
            by_peer.setdefault(entry.peer, []).append(entry)
        taken = {c.address: c.address_at for c in clusters.values() if c.address is not None}
        # What each cluster's own file routes on to each of its peers: a network that another
        # file routes to this cluster, and this cluster routes on to a third, is that third's
        # (a hub forwarding for its spokes), not a subnet of this one.
        onward: dict[str, list[tuple[str, Any]]] = {}
        for entry in entries:
            onward.setdefault(entry.owner, []).extend((entry.peer, network.network) for network, _ in entry.section.allowed_ips)
        for name, found in by_peer.items():
            cluster = clusters[name]
            if cluster.file is None:
                self._external_address(cluster, found, clusters, pool, taken)
            self._endpoint(cluster, found, clusters)
            self._subnets(cluster, found, clusters, pool, onward.get(name, []))

    def _external_address(self, cluster: _Cluster, found: list[_Entry], clusters, pool, taken: dict[str, str]) -> None:
        for entry in found:
            display = clusters[entry.owner].file.display
            for network, line in entry.section.allowed_ips:
                if network.version != pool.version or not _usable(pool, network.ip):
                    continue
                text = str(network.ip)
                if cluster.address is None:
                    if text in taken:
                        self.error(display, line, f"AllowedIPs {network.ip} for an external peer is the overlay address of {taken[text]}")
                        return
                    cluster.address, cluster.address_at = text, _at(display, line)
                    taken[text] = _at(display, line)
                elif text != cluster.address:
                    self.error(
                        display, line,
                        f"AllowedIPs gives peer '{cluster.name}' overlay address {text}, but {cluster.address_at} gives it {cluster.address}",
                    )
                    return
                break

    def _endpoint(self, cluster: _Cluster, found: list[_Entry], clusters) -> None:
        for entry in found:
            if entry.section.endpoint is None:
                continue
            value, line = entry.section.endpoint
            text = str(parse_endpoint(value))
            display = clusters[entry.owner].file.display
            if cluster.endpoint is None:
                cluster.endpoint, cluster.endpoint_at = text, _at(display, line)
            elif cluster.endpoint != text:
                self.error(
                    display, line,
                    f"Endpoint {text} for '{cluster.name}' conflicts with {cluster.endpoint} at {cluster.endpoint_at}: "
                    "skyplan gives a cluster one endpoint that every peer dials",
                )
        if cluster.endpoint is None:
            return
        for entry in found:
            if entry.section.endpoint is None:
                self.skip(
                    clusters[entry.owner].file.display, entry.section.line,
                    f"[Peer] {cluster.name} has no Endpoint here; skyplan writes its endpoint {cluster.endpoint} "
                    f"(from {cluster.endpoint_at}) in every peer's config",
                )

    def _subnets(self, cluster: _Cluster, found: list[_Entry], clusters, pool, onward) -> None:
        per_entry: list[tuple[_Entry, set[str]]] = []
        for entry in found:
            display = clusters[entry.owner].file.display
            mine: set[str] = set()
            has_address = False
            for network, line in entry.section.allowed_ips:
                whole = network.network
                if cluster.address is not None and str(network.ip) == cluster.address:
                    has_address = True
                    if whole.prefixlen != whole.max_prefixlen:
                        self.skip(
                            display, line,
                            f"AllowedIPs {network} for '{cluster.name}' is carried as {network.ip}/{whole.max_prefixlen}: "
                            f"skyplan routes only a cluster's own overlay address to it ({whole} holds others' too)",
                        )
                    continue
                if whole.version == pool.version and whole.overlaps(pool):
                    self.skip(
                        display, line,
                        f"AllowedIPs {whole} for '{cluster.name}' is not carried: it routes overlay addresses of other "
                        "clusters through this one (for that, declare a transit hub mesh: meshes topology hub, transit true)",
                    )
                    continue
                through = sorted({peer for peer, there in onward if peer != entry.owner and there.version == whole.version and there.overlaps(whole)})
                if through:
                    self.skip(
                        display, line,
                        f"AllowedIPs {whole} for '{cluster.name}' is not carried: '{cluster.name}' routes it on to "
                        f"'{through[0]}', whose network it is (for that, declare a transit hub mesh: meshes topology hub, "
                        "transit true)",
                    )
                    continue
                if whole.prefixlen != network.max_prefixlen and network.ip != whole.network_address:
                    self.skip(display, line, f"AllowedIPs {network} for '{cluster.name}' is carried as the network {whole}")
                text = str(whole)
                mine.add(text)
                if text not in cluster.subnets:
                    cluster.subnets.append(text)
            if cluster.address is not None and not has_address:
                self.skip(
                    display, entry.section.line,
                    f"[Peer] {cluster.name}: skyplan adds its overlay address {cluster.address} to AllowedIPs here",
                )
            per_entry.append((entry, mine))
        for entry, mine in per_entry:
            missing = [s for s in cluster.subnets if s not in mine]
            if missing:
                self.skip(
                    clusters[entry.owner].file.display, entry.section.line,
                    f"[Peer] {cluster.name}: skyplan routes all of its subnets from every peer, and adds {', '.join(missing)} here",
                )

    def _links(self, clusters: dict[str, _Cluster], entries: list[_Entry]) -> list[dict]:
        """One link per peering, named `<a>.<b>` in name order; preshared keys both ends agree on."""
        by_pair: dict[frozenset, list[_Entry]] = {}
        for entry in entries:
            by_pair.setdefault(frozenset((entry.owner, entry.peer)), []).append(entry)
        # A cluster's one keepalive: the value most of its carried peers have.
        by_owner: dict[str, list[_Entry]] = {}
        for entry in entries:
            by_owner.setdefault(entry.owner, []).append(entry)
        for name, cluster in clusters.items():
            if cluster.file is None:
                continue
            mine = by_owner.get(name, [])
            cluster.keepalive = _keepalive(mine)
            for entry in mine:
                if entry.section.keepalive != cluster.keepalive:
                    self.skip(
                        cluster.file.display, entry.section.keepalive_line or entry.section.line,
                        f"PersistentKeepalive {entry.section.keepalive} for '{entry.peer}' is not carried: skyplan gives every "
                        f"peer of a cluster one keepalive, here {cluster.keepalive} (most of this file's peers have it)",
                    )
        links: list[dict] = []
        used = set(clusters)
        for pair in sorted(by_pair, key=sorted):
            a, b = sorted(pair)
            found = by_pair[pair]
            keys = {e.owner: self._psk_token(clusters[e.owner], e.section.preshared_key) for e in found}
            unknown = [e for e in found if (keys[e.owner] or "").startswith(gateway_import.UNKNOWN)]
            if unknown:
                self.error(
                    clusters[unknown[0].owner].file.display, unknown[0].section.line,
                    f"[Peer] {unknown[0].peer}: its preshared key cannot be compared with the other end's without "
                    "reading it (the host has no sha256sum); nothing of it was read",
                )
                continue
            if len(found) == 2:
                here, there = found[0], found[1]
                if keys[here.owner] != keys[there.owner]:
                    which = "a PresharedKey only at one end" if None in keys.values() else "a different PresharedKey at each end"
                    self.error(
                        clusters[there.owner].file.display, there.section.line,
                        f"[Peer] {there.peer}: the peering of '{a}' and '{b}' has {which} (the other is "
                        f"{_at(clusters[here.owner].file.display, here.section.line)}); both ends must hold the same preshared key",
                    )
                    continue
            # The value, where a file gave one; between hosts only its digest is known here.
            values = [e.section.preshared_key for e in found if clusters[e.owner].file.gateway is None]
            preshared = values[0] if values else None
            wanted = any(keys.values())
            name = _link_name(a, b, used)
            used.add(name)
            link = {"name": name, "source": a, "target": b}
            if wanted:
                link["preshared_key"] = True
            links.append({"spec": link, "psk": preshared})
        return links

    def _psk_token(self, owner: _Cluster, value: str | None) -> str | None:
        """A preshared key as the ends of a peering are compared: a host's comes as a digest
        with this import's salt, so a file's value is digested the same way."""
        if value is None or owner.file.gateway is not None:
            return value
        if not self.request.hosts:
            return value
        from skyplan_wireguard import remote

        return gateway_import.DIGEST + remote.psk_digest(self.salt, value)

    # -- results ---------------------------------------------------------------------------------

    def _computed(self, clusters: dict[str, _Cluster], pool) -> dict[str, dict] | None:
        names = sorted(clusters)
        pinned = {n: clusters[n].address for n in names if clusters[n].address is not None}
        try:
            assigned = addresses.allocate(dict.fromkeys(names, str(pool)), {}, pinned)
        except ValueError as exc:
            self.error("import", None, str(exc))
            return None
        for name in names:
            cluster = clusters[name]
            if cluster.address is None:
                display, line = cluster.seen_at or ("import", None)
                self.skip(
                    display, line,
                    f"external peer '{name}' has no overlay address in any file's AllowedIPs: skyplan gives it "
                    f"{assigned[name]}, which its peers' AllowedIPs now include",
                )
        return {f"cluster.{n}": {"address": assigned[n], "public_key": clusters[n].public_key} for n in names}

    def _document(self, files, clusters: dict[str, _Cluster], links: list[dict], pool) -> dict:
        own = [c for c in clusters.values() if c.file is not None]
        for cluster in own:
            if cluster.endpoint is None and cluster.keepalive == 0:
                self.skip(
                    cluster.file.display, cluster.file.interface_line,
                    f"no peer dials '{cluster.name}' (no file has an Endpoint for it) and it keeps no PersistentKeepalive: "
                    f"skyplan needs one for a cluster that only dials out, and writes {NAT_KEEPALIVE}",
                )
                cluster.keepalive = NAT_KEEPALIVE
        defaults = WireGuardSettings()
        ports = [c.file.listen_port for c in own if c.file.listen_port is not None]
        listen_port = _most_common(ports, defaults.listen_port)
        keepalive = _most_common([c.keepalive for c in own], defaults.persistent_keepalive)
        mtus = {c.file.mtu for c in own}
        mtu = next(iter(mtus)) if len(mtus) == 1 else None
        provider: dict = {"name": "wireguard"}
        interface = self._interface(files)
        if interface != defaults.interface:
            provider["interface"] = interface
        provider["address_pool"] = str(pool)
        if listen_port != defaults.listen_port:
            provider["listen_port"] = listen_port
        if keepalive != defaults.persistent_keepalive:
            provider["persistent_keepalive"] = keepalive
        if mtu is not None:
            provider["mtu"] = mtu
        ssh_settings = self.request.settings.get("ssh")
        if self.request.hosts and ssh_settings:
            provider["ssh"] = dict(ssh_settings)
        entries = []
        for cluster in own:
            parsed = cluster.file
            item: dict = {"name": cluster.name}
            if cluster.endpoint is not None:
                item["endpoint"] = cluster.endpoint
            if cluster.subnets:
                item["subnets"] = sorted(cluster.subnets, key=_network_order)
            port = parsed.listen_port
            if port is None:
                self.skip(
                    parsed.display, parsed.interface_line,
                    f"[Interface] has no ListenPort (WireGuard picks a random one); skyplan writes ListenPort = {listen_port}",
                )
            elif port != listen_port:
                item["listen_port"] = port
            if mtu is None and parsed.mtu is not None:
                item["mtu"] = parsed.mtu
            if cluster.keepalive != keepalive:
                item["persistent_keepalive"] = cluster.keepalive
            item["address"] = cluster.address
            if parsed.gateway is not None:
                item["gateway"] = parsed.gateway
            entries.append(item)
            for directive in parsed.not_carried:
                self.skip(parsed.display, directive.line, f"{directive.key} is not carried: {wgquick.NOT_CARRIED[directive.key]}")
        for cluster in sorted((c for c in clusters.values() if c.file is None), key=lambda c: c.name):
            item = {"name": cluster.name}
            if cluster.endpoint is not None:
                item["endpoint"] = cluster.endpoint
            if cluster.subnets:
                item["subnets"] = sorted(cluster.subnets, key=_network_order)
            if cluster.address is not None:
                item["address"] = cluster.address
            item["public_key"] = cluster.public_key
            entries.append(item)
        used = {e["spec"]["source"] for e in links} | {e["spec"]["target"] for e in links}
        # An external peer every entry of which was left behind is no cluster at all.
        entries = [e for e in entries if "public_key" not in e or e["name"] in used]
        return {"provider": provider, "clusters": entries, "links": [link["spec"] for link in links]}

    def _write(self, paths: WorkspacePaths, clusters: dict[str, _Cluster], links: list[dict]) -> list[Path]:
        """Private keys and preshared keys into the key store; each file new, 0600, in a 0700 folder."""
        files: list[tuple[Path, bytes, int]] = []
        for cluster in clusters.values():
            if cluster.file is not None and cluster.file.gateway is None:
                files.append((paths.keys / f"{cluster.name}.key", (cluster.file.private_key + "\n").encode("ascii"), 0o600))
        for link in links:
            # A peering between hosts (or a host and an external peer) keeps its key there: only
            # a key some file gave (a local end's) has a value here.
            if link["psk"] is not None:
                pair = psk.pair(link["spec"]["source"], link["spec"]["target"])
                files.append((psk.path(paths.keys, pair), (link["psk"] + "\n").encode("ascii"), 0o600))
        within = paths.root
        try:
            # Looked for first: a key in the way stops the import before any folder is made.
            for file, _, _ in files:
                if atomic.read_bytes(file, within, limit=4096) is not None:
                    self.error(str(file), None, "exists already; import writes no key over another")
            if not self.errors:
                atomic.ensure_dir(paths.data, 0o700, within)
                atomic.ensure_dir(paths.keys, 0o700, within)
        except (OSError, UnsafePathError) as exc:
            self.error(str(paths.keys), None, f"cannot be prepared for the keys: {getattr(exc, 'strerror', None) or exc}")
        if self.errors or not files:
            return []
        failures = atomic.write_many(files, within=within)
        written = [file for file, _, _ in files if file not in failures]
        if failures:
            _remove_all(written, within)
            for file, exc in failures.items():
                self.error(str(file), None, f"cannot be written: {getattr(exc, 'strerror', None) or exc}")
            return []
        return written


def _remove_all(files: list[Path], within: Path) -> None:
    for file in files:
        try:
            atomic.remove(file, within)
        except (OSError, UnsafePathError):
            pass


def import_configs(request: ImportRequest) -> ImportResponse:
    return _Import(request).run()


# -- small pieces ---------------------------------------------------------------------------------


def _usable(pool, address) -> bool:
    first, last = addresses._bounds(pool)
    return first <= int(address) <= last


def _smallest_holding(values: list[int], version: int):
    bits = 32 if version == 4 else 128
    make = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    for prefix in range(bits, -1, -1):
        network = make((min(values) >> (bits - prefix) << (bits - prefix), prefix))
        first, last = addresses._bounds(network)
        if all(first <= v <= last for v in values) and addresses.usable_count(str(network)) >= len(values):
            return network
    return make((0, 0))


def _keepalive(entries: list[_Entry]) -> int:
    counts = Counter(e.section.keepalive for e in entries)
    if not counts:
        return 0
    # Most peers' value; between equally common ones, the larger (a NAT'd peer keeps its tunnel).
    return max(counts, key=lambda value: (counts[value], value))


def _most_common(values: list[int], default: int) -> int:
    if not values:
        return default
    counts = Counter(values)
    return max(counts, key=lambda value: (counts[value], value == default, -value))


def _link_name(a: str, b: str, used: set[str]) -> str:
    name = f"{a}.{b}"
    if len(name) <= 63 and _NAME.fullmatch(name) and name not in used:
        return name
    digest = hashlib.sha256(f"{a}\0{b}".encode()).hexdigest()
    for size in range(8, 65, 4):
        candidate = f"link-{digest[:size]}"
        if candidate not in used:
            return candidate
    raise AssertionError("sha256 digests of distinct pairs collided")


def _interface_name(files: list[tuple[str, wgquick.WgQuickFile]]) -> str | None:
    """The interface name of `<cluster>/<interface>.conf` files: their shared stem."""
    stems = {Path(parsed.display).stem for _, parsed in files}
    names = {name for name, _ in files}
    if len(stems) == 1 and not stems & names:
        stem = next(iter(stems))
        if _INTERFACE.fullmatch(stem):
            return stem
    return None


def _network_order(text: str):
    network = ipaddress.ip_network(text)
    return (network.version, int(network.network_address), network.prefixlen)
