"""What a provider's validate is given: every argument of each entry as written, unset ones left out."""

from __future__ import annotations

from skyplan.config import rules
from skyplan.config.models import Config
from skyplan.sdk import ValidateRequest, ValidateResponse

KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="


class _Recording:
    def __init__(self):
        self.requests: list[ValidateRequest] = []

    def validate(self, request: ValidateRequest) -> ValidateResponse:
        self.requests.append(request)
        return ValidateResponse()


def test_cluster_and_link_views_carry_every_argument_that_is_set():
    config = Config.model_validate(
        {
            "version": 1,
            "clusters": [
                {
                    "name": "hub", "endpoint": "192.0.2.1:51820", "subnets": ["10.0.0.0/16"], "gateway": "ssh://root@192.0.2.1",
                    "listen_port": 51821, "mtu": 1380, "persistent_keepalive": 0, "address": "100.96.0.7",
                },
                {"name": "nat"},
                {"name": "partner", "endpoint": "198.51.100.7:51820", "public_key": KEY},
            ],
            "links": [{"name": "hub-partner", "source": "hub", "target": "partner", "preshared_key": False}],
            "meshes": [{"name": "m", "clusters": ["hub", "nat"], "topology": "hub", "hub": "hub", "transit": True}],
        }
    )
    expanded, _ = rules.expand_meshes(config, [])
    provider = _Recording()
    rules.check(expanded, provider)
    (request,) = provider.requests
    clusters = {view.name: view.attributes for view in request.clusters}
    assert clusters == {
        "hub": {
            "endpoint": "192.0.2.1:51820", "subnets": ["10.0.0.0/16"], "listen_port": 51821, "mtu": 1380,
            "persistent_keepalive": 0, "address": "100.96.0.7", "gateway": "ssh://root@192.0.2.1",
        },
        "nat": {"subnets": []},
        "partner": {"endpoint": "198.51.100.7:51820", "subnets": [], "public_key": KEY},
    }
    links = {view.name: view.attributes for view in request.links}
    assert links == {
        "hub-partner": {"source": "hub", "target": "partner", "preshared_key": False},
        "m.hub.nat": {"source": "hub", "target": "nat", "transit_hub": "hub"},
    }
