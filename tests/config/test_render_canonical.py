"""`render_canonical` writes data as `skyplan fmt` would lay it out, and as YAML reads it back."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from skyplan.config.fmt import format_text, main_layout, render_canonical

TRICKY = [
    "true", "False", "yes", "off", "null", "~", "=", "<<", "1e3", "0x1f", "0o17", "017", "12", "-3", "+4", "1.5", ".5",
    "1:20", "1:2:3:4:5:6:7:8", ".inf", ".NaN", "2026-12-01", "10.0", "10.0.0.1", "fd00:50::1", "[2001:db8::1]:51820",
    "a: b", "#x", "x #y", "-dash", "?q", "*star", "&amp", "!bang", "%pct", "@at", "`tick", "'single'", '"double"',
    "with space", "ünïcode", "", "a,b", "{x}", "n/c2tU+AWN40wZYycgQGX/7Y1FQvcC3H0w4fMUtTphM=", "+starts/plus=", "ends:",
]  # fmt: skip


def _document(values: list[str]) -> dict:
    return {
        "version": 1,
        "provider": {"name": "wireguard", "address_pool": "10.0.0.0/24", "listen_port": 51820, "preshared_keys": True},
        "clusters": [
            {"name": "a", "endpoint": values[0], "subnets": values[:3], "address": values[-1]},
            {"name": "b", "subnets": [f"10.{n}.0.0/16" for n in range(20)], "public_key": values[1]},
        ],
        "links": [{"name": value, "source": "a", "target": "b", "preshared_key": True} for value in values],
    }


def _fields(name: str):
    from skyplan.sdk import provider_class

    return tuple(provider_class(name).settings_model.model_fields)


@pytest.mark.parametrize("start", range(0, len(TRICKY), 3))
def test_what_it_writes_is_canonical_and_reads_back_as_the_data(start: int) -> None:
    values = TRICKY[start:] + TRICKY[:start]
    data = _document(values)
    text = render_canonical(data, main_layout("wireguard", _fields), header="# a header\n")
    assert format_text(text, provider_fields=_fields) == text
    assert YAML(typ="safe").load(text) == data
    assert text.startswith("# a header\nversion: 1\nprovider:\n  name: wireguard\n")


def test_a_list_too_long_for_one_line_is_written_as_a_block() -> None:
    text = render_canonical(_document(["x", "w", "z"]), main_layout("wireguard", _fields))
    assert "    subnets:\n      - 10.0.0.0/16\n" in text
    assert "    subnets: [x, w, z]\n" in text
