"""Desired attributes from links.yaml: each new key recorded only when it is set, as the provider declares."""

from __future__ import annotations

from pathlib import Path

from skyplan.config.loader import load_config
from skyplan.plan.desired import desired_resources

KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="

FILE = f"""\
version: 1
provider:
  name: wireguard
  mtu: 1420
  persistent_keepalive: 25
  preshared_keys: true
clusters:
  - {{name: hub, endpoint: "192.0.2.1:51820", subnets: [10.0.0.0/16]}}
  - {{name: s1, subnets: [10.1.0.0/16], mtu: 1380, persistent_keepalive: 15, listen_port: 51821, address: 100.96.0.9}}
  - {{name: s2, subnets: [10.2.0.0/16]}}
  - {{name: partner, endpoint: "198.51.100.7:51820", public_key: "{KEY}"}}
links:
  - {{name: hub-partner, source: hub, target: partner, preshared_key: false}}
  - {{name: s1-partner, source: s1, target: partner}}
meshes:
  - {{name: stores, clusters: [hub, s1, s2], topology: hub, hub: hub, transit: true}}
  - {{name: plain, clusters: [hub, s2], topology: hub, hub: hub}}
"""


def _desired(tmp_path: Path, text: str):
    (tmp_path / "links.yaml").write_text(text)
    loaded = load_config(tmp_path / "links.yaml")
    return {a: r.attributes for a, r in desired_resources(loaded.config, loaded.provider_class, loaded.settings).items()}


def test_each_new_key_is_recorded_only_when_set(tmp_path):
    desired = _desired(tmp_path, FILE)
    hub, s1, s2, partner = (desired[f"cluster.{n}"] for n in ("hub", "s1", "s2", "partner"))
    assert "endpoint" not in s1 and "endpoint" not in s2 and hub["endpoint"] == "192.0.2.1:51820"
    # The cluster's own values override the provider's.
    assert (s1["mtu"], s1["persistent_keepalive"], s1["listen_port"]) == (1380, 15, 51821)
    assert (s2["mtu"], s2["persistent_keepalive"], s2["listen_port"]) == (1420, 25, 51820)
    assert s1["address"] == "100.96.0.9" and "address" not in s2
    assert partner["public_key"] == KEY and "public_key" not in hub
    assert not {"gateway", "public_key", "address"} & set(hub)


def test_links_record_preshared_keys_and_transit_hubs(tmp_path):
    desired = _desired(tmp_path, FILE)
    links = {a.removeprefix("link."): attributes for a, attributes in desired.items() if a.startswith("link.")}
    assert links == {
        # Its own preshared_key: false wins over provider.preshared_keys: true, and records nothing.
        "hub-partner": {"source": "hub", "target": "partner"},
        "s1-partner": {"source": "s1", "target": "partner", "preshared_key": True},
        "stores.hub.s1": {"source": "hub", "target": "s1", "preshared_key": True, "transit_hub": "hub"},
        "stores.hub.s2": {"source": "hub", "target": "s2", "preshared_key": True, "transit_hub": "hub"},
        "plain.hub.s2": {"source": "hub", "target": "s2", "preshared_key": True},
    }


def test_a_file_without_the_new_keys_records_what_it_recorded_before(tmp_path):
    desired = _desired(
        tmp_path,
        'version: 1\nclusters:\n  - {name: a, endpoint: "192.0.2.1:51820"}\n  - {name: b, endpoint: "192.0.2.2:51820"}\n'
        "links:\n  - {name: a-b, source: a, target: b}\n",
    )
    assert desired["link.a-b"] == {"source": "a", "target": "b"}
    assert set(desired["cluster.a"]) == {"endpoint", "subnets", "listen_port", "interface", "mtu", "persistent_keepalive", "address_pool", "output_dir"}
