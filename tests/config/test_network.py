"""parse_endpoint's shortcut for plain IPv4 endpoints, and parse_network's memory, change no answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyplan.config import network


def outcome(parse, text):
    try:
        return ("ok", parse(text))
    except ValueError as exc:
        return ("error", str(exc))


ENDPOINTS = [
    "192.0.2.1:51820", "0.0.0.0:1", "255.255.255.255:65535", "10.0.0.1:65536", "10.0.0.1:0", "10.0.0.1:01",
    "10.0.0.1:00051", "010.0.0.1:1", "10.0.0.01:1", "256.0.0.1:1", "1.2.3:1", "1.2.3.4.5:1", "1.2.3.4:", ":1",
    "1.2.3.4:1:2", "1.2.3.4:123456", "1.2.3.4: 1", " 1.2.3.4:1", "1.2.3.4:1\n", "1.2.3.4\n:1", "١.2.3.4:1",
    "1.2.3.4:١", "[::1]:1", "[2001:db8::1]:51820", "vpn.example.net:51820", "a:1", "1.2.3.4", "99.99.99.99:99999",
    "199.249.250.251:65535", "1.2.3.4:+1", "1.2.3.4:-1",
]


@pytest.mark.parametrize("text", ENDPOINTS)
def test_an_endpoint_parses_as_without_the_shortcut(text):
    assert outcome(network.parse_endpoint, text) == outcome(network._parse_endpoint, text)


@settings(max_examples=3000, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet="0123456789.:[]a \n", max_size=24))
def test_generated_endpoints_parse_as_without_the_shortcut(text):
    assert outcome(network.parse_endpoint, text) == outcome(network._parse_endpoint, text)


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=70000))
def test_every_ipv4_endpoint_parses_as_without_the_shortcut(address, port):
    text = f"{address}:{port}"
    assert outcome(network.parse_endpoint, text) == outcome(network._parse_endpoint, text)


def test_a_network_is_parsed_once_and_errors_each_time():
    first = network.parse_network("10.77.0.0/16")
    assert network.parse_network("10.77.0.0/16") is first
    for _ in range(2):
        with pytest.raises(ValueError, match="has host bits set; did you mean 10.77.0.0/16"):
            network.parse_network("10.77.0.1/16")
