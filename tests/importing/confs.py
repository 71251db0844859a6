"""wg-quick files as other tools and people write them, and how to compare two sets semantically."""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from skyplan_wireguard import keys, psk


@dataclass(frozen=True)
class HubAndSpoke:
    """Hand-written hub-and-spoke files: a hub with a PostUp line, a spoke with a preshared key and
    DNS, a spoke behind NAT, and a partner whose key no file holds (an external peer)."""

    folder: Path
    private: dict[str, str]
    preshared: str
    partner_public: str

    @property
    def files(self) -> list[Path]:
        return [self.folder / name / "wg0.conf" for name in ("hub", "spoke1", "spoke2")]

    def public(self, name: str) -> str:
        return keys.public_key(self.private[name])


def write_hub_and_spoke(folder: Path, hub_endpoint: str = "192.0.2.11:51820") -> HubAndSpoke:
    private = {name: keys.generate() for name in ("hub", "spoke1", "spoke2")}
    public = {name: keys.public_key(key) for name, key in private.items()}
    preshared = psk.generate()
    partner_public = keys.public_key(keys.generate())
    texts = {
        "hub": f"""[Interface]
# The hub: spokes dial it.
Address = 10.50.0.1/24
ListenPort = 51820
PrivateKey = {private['hub']}
PostUp = iptables -A FORWARD -i %i -j ACCEPT; sysctl -w net.ipv4.ip_forward=1
PostDown = iptables -D FORWARD -i %i -j ACCEPT

# spoke1
[Peer]
PublicKey = {public['spoke1']}
PresharedKey = {preshared}
AllowedIPs = 10.50.0.2/32, 10.1.0.0/16

# spoke2, behind NAT
[Peer]
PublicKey = {public['spoke2']}
AllowedIPs = 10.50.0.3/32

# partner
[Peer]
PublicKey = {partner_public}
Endpoint = 198.51.100.7:51820
AllowedIPs = 10.50.0.9/32, 192.168.9.0/24
""",
        "spoke1": f"""[Interface]
Address = 10.50.0.2/24
ListenPort = 51820
PrivateKey = {private['spoke1']}
DNS = 10.50.0.1

[Peer]
PublicKey = {public['hub']}
PresharedKey = {preshared}
Endpoint = {hub_endpoint}
AllowedIPs = 10.50.0.1/32
PersistentKeepalive = 25
""",
        "spoke2": f"""[Interface]
Address = 10.50.0.3/24
ListenPort = 51820
PrivateKey = {private['spoke2']}

[Peer]
PublicKey = {public['hub']}
Endpoint = {hub_endpoint}
AllowedIPs = 10.50.0.1/32
PersistentKeepalive = 25
""",
    }
    for name, text in texts.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "wg0.conf").write_text(text)
    return HubAndSpoke(folder, private, preshared, partner_public)


def stripped(path: Path) -> str:
    """`wg-quick strip FILE`: what `wg syncconf` would be given."""
    done = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


def semantic(text: str) -> dict:
    """A stripped config as sets: the interface's key and port, and each peer by public key."""
    interface: dict = {}
    peers: dict[str, dict] = {}
    section: dict | None = None
    for raw in text.split("\n"):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.lower() == "[interface]":
            section = interface
            continue
        if line.lower() == "[peer]":
            section = {"allowedips": set(), "persistentkeepalive": 0}
            peers[f"unnamed-{len(peers)}"] = section
            continue
        key, _, value = line.partition("=")
        key, value = key.strip().lower(), value.strip()
        assert section is not None
        if key == "allowedips":
            section[key] |= {str(ipaddress.ip_network(v.strip(), strict=False)) for v in value.split(",") if v.strip()}
        elif key == "persistentkeepalive":
            section[key] = int(value)
        elif key == "listenport":
            section[key] = int(value)
        else:
            section[key] = value
    by_key = {peer.pop("publickey"): peer for peer in peers.values()}
    return {"interface": interface, "peers": by_key}
