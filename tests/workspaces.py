"""links.yaml texts the tests build on."""

from __future__ import annotations

BASIC = """\
version: 1
provider:
  name: wireguard
  address_pool: 100.96.0.0/16
clusters:
  - name: us-west
    endpoint: 203.0.113.10:51820
    subnets: [10.10.0.0/16]
  - name: eu-central
    endpoint: 198.51.100.20:51820
    subnets: [10.20.0.0/16]
  - name: ap-south
    endpoint: vpn.ap-south.example.net:51820
    subnets: [10.30.0.0/16]
links:
  - name: us-eu
    source: us-west
    target: eu-central
  - name: us-ap
    source: us-west
    target: ap-south
"""


def links_yaml(clusters: list[tuple[str, str, list[str]]], links: list[tuple[str, str, str]], provider: str = "") -> str:
    """A links.yaml of (name, endpoint, subnets) clusters and (name, source, target) links."""
    lines = ["version: 1", "provider:", "  name: wireguard"]
    lines += [f"  {line}" for line in provider.splitlines() if line.strip()]
    lines.append("clusters:")
    for name, endpoint, subnets in clusters:
        lines += [f"  - name: {name}", f"    endpoint: \"{endpoint}\"", f"    subnets: [{', '.join(subnets)}]"]
    lines.append("links:" if links else "links: []")
    for name, source, target in links:
        lines += [f"  - name: {name}", f"    source: {source}", f"    target: {target}"]
    return "\n".join(lines) + "\n"
