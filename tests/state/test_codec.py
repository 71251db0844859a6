"""The state's encoding: exactly the bytes pydantic's JSON with two-space indent gives, and read back alike."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skyplan.state.codec import encode_state, parse_state
from skyplan.state.model import ResourceState, ResourceStatus, RunInfo, State

INIT = ResourceStatus(phase="INIT", since="2026-12-01T00:00:00Z")
FAILED = ResourceStatus(phase="FAILED", reason='key "x": não\tpermitido', since="2026-12-01T00:00:01Z")
CLUSTER = ResourceState(
    type="cluster", name="ü-1", attributes={"subnets": ["10.0.0.0/24"], "listen_port": 51820, "mtu": None, "ratio": 1.5,
                                             "nested": {"b": [True, False], "a": {}}},
    computed={"address": "100.64.0.1", "public_key": "k" * 43 + "="}, status=INIT, created="2026-12-01T00:00:00Z",
    schema_version=2,
)
LINK = ResourceState(type="link", name="a-b", managed_by="skyctl", attributes={"source": "ü-1", "target": "b"}, status=FAILED,
                     created="2026-12-01T00:00:00Z", pending="create", moved_from="old")
OLD = ResourceState(type="link", name="old-format", attributes={"source": "a", "target": "b"}, status=INIT, created="x")  # version 0: not written
RUN = RunInfo(id="1", operation="skyctl create link", who="me@host", started="2026-12-01T00:00:00Z")
STATES = [
    State(lineage="l"),
    State(lineage="l", serial=7, resources=[CLUSTER, LINK, OLD]),
    State(lineage="l", serial=8, resources=[LINK], interrupted=RUN),
]


@pytest.mark.parametrize("state", STATES, ids=["empty", "resources", "interrupted"])
def test_the_bytes_are_pydantics_indented_json(state) -> None:
    encoded = encode_state(state)
    assert encoded == state.model_dump_json(indent=2).encode() + b"\n"
    assert parse_state(encoded, "state.json") == state


def test_a_fresh_process_encodes_its_first_state() -> None:
    # The state models build their serializer on first use (defer_build): the first document a
    # process encodes builds it, from however shallow a call.
    code = "from skyplan.state.codec import encode_state; from skyplan.state.model import State; print(encode_state(State(lineage='l')).decode(), end='')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == State(lineage="l").model_dump_json(indent=2) + "\n"
