"""Seeded links.yaml workspaces of a given size, valid by construction."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

SEED = 20240611
# Far bigger than any cluster count we generate, and clear of 10.0.0.0/8 where the subnets live.
ADDRESS_POOL = "100.64.0.0/10"
MESH_NAME = "mesh"


@dataclass(frozen=True)
class Topology:
    """Clusters (name, endpoint, subnet) and links (name, source, target) of one benchmark size."""

    clusters: list[tuple[str, str, str]]
    links: list[tuple[str, str, str]]

    @property
    def resource_count(self) -> int:
        return len(self.clusters) + len(self.links)


def cluster_count(links: int) -> int:
    """Ten links per cluster, as in the issue (1k/100, 10k/1,000, 100k/10,000).

    Tiny sizes get more clusters so that distinct pairs are plentiful: at least twice as many
    pairs as links, which keeps random pair picking fast and leaves unused pairs for skyctl.
    """
    needed = math.ceil((1 + math.sqrt(1 + 16 * links)) / 2)  # smallest c with c(c-1)/2 >= 2*links
    return max(links // 10, needed, 2)


def make_topology(links: int, seed: int = SEED) -> Topology:
    count = cluster_count(links)
    if count > 65536:
        raise ValueError(f"{links} links need {count} clusters; only 65,536 distinct /24s fit in 10.0.0.0/8")
    width = len(str(count - 1))
    clusters = [
        # Each cluster its own /24, so no two networks overlap wherever links lead.
        (f"c{i:0{width}d}", f"198.18.{i >> 8}.{i & 255}:51820", f"10.{i >> 8}.{i & 255}.0/24")
        for i in range(count)
    ]
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    chosen: list[tuple[int, int]] = []
    while len(chosen) < links:
        a, b = rng.randrange(count), rng.randrange(count)
        pair = (min(a, b), max(a, b))
        if a != b and pair not in pairs:
            pairs.add(pair)
            chosen.append((a, b))
    width = len(str(links - 1))
    return Topology(
        clusters=clusters,
        links=[(f"l{i:0{width}d}", clusters[a][0], clusters[b][0]) for i, (a, b) in enumerate(chosen)],
    )


def unlinked_pair(topology: Topology) -> tuple[str, str]:
    """Two clusters no link joins yet: what `skyctl create link` adds in the benchmark."""
    linked = {frozenset((source, target)) for _, source, target in topology.links}
    names = [name for name, _, _ in topology.clusters]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if frozenset((a, b)) not in linked:
                return a, b
    raise ValueError("every pair of clusters is linked already")


def full_mesh(nodes: int) -> Topology:
    """`nodes` clusters, every pair linked (n(n-1)/2 links), named as a `meshes:` entry names them."""
    if not 2 <= nodes <= 65536:
        raise ValueError(f"a full mesh needs 2 to 65,536 clusters, not {nodes}")
    width = len(str(nodes - 1))
    clusters = [(f"m{i:0{width}d}", f"198.18.{i >> 8}.{i & 255}:51820", f"10.{i >> 8}.{i & 255}.0/24") for i in range(nodes)]
    names = [name for name, _, _ in clusters]
    return Topology(
        clusters=clusters,
        links=[(f"{MESH_NAME}.{a}.{b}", a, b) for i, a in enumerate(names) for b in names[i + 1 :]],
    )


def _header() -> list[str]:
    return [
        "version: 1",
        "provider:",
        "  name: wireguard",
        "  output_dir: wireguard",
        "  interface: wgsky0",
        f"  address_pool: {ADDRESS_POOL}",
        "  listen_port: 51820",
        "  persistent_keepalive: 25",
    ]


def _clusters(topology: Topology) -> list[str]:
    lines = ["clusters:"]
    for name, endpoint, subnet in topology.clusters:
        lines += [f"  - name: {name}", f"    endpoint: {endpoint}", f"    subnets: [{subnet}]"]
    return lines


def links_yaml(topology: Topology) -> str:
    lines = [*_header(), *_clusters(topology), "links:"]
    for name, source, target in topology.links:
        lines += [f"  - name: {name}", f"    source: {source}", f"    target: {target}"]
    return "\n".join(lines) + "\n"


def mesh_yaml(topology: Topology) -> str:
    """The full mesh as a user writes it: the clusters and one `meshes:` entry (not 19,900 links)."""
    members = ", ".join(name for name, _, _ in topology.clusters)
    return "\n".join([*_header(), *_clusters(topology), "meshes:", f"  - name: {MESH_NAME}", f"    clusters: [{members}]", "    topology: full"]) + "\n"


def write_workspace(folder: Path, topology: Topology, *, mesh: bool = False) -> Path:
    """A fresh workspace folder holding only links.yaml (with `mesh`, as one full mesh); returns the file's path."""
    folder.mkdir(parents=True, exist_ok=False)
    path = folder / "links.yaml"
    path.write_text(mesh_yaml(topology) if mesh else links_yaml(topology))
    return path
