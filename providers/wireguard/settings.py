"""Settings of the WireGuard provider (the `provider:` block of links.yaml)."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator

from skyplan.sdk import READ_BACK, ZONE_REASON

INTERFACE_PATTERN = r"^[a-zA-Z0-9_=+.-]{1,15}$"

# The settings that shape each cluster's own file. Every cluster records them, so that a change
# shows in the plan as an update of the clusters it rewrites.
CLUSTER_SETTINGS = ("listen_port", "interface", "mtu", "persistent_keepalive", "address_pool", "output_dir")

# The shape of what a cluster records. Raise it with every name added to CLUSTER_SETTINGS: the
# provider's upgrade then gives clusters recorded before the setting's default, which must be
# what this provider did before the setting existed. 0: the shape skyplan 0.1.0 recorded.
SCHEMA_VERSION = 0


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(s|m)?")
# What editors are told a duration may be: the validator below turns text into seconds first.
_DURATION_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "number", "minimum": 1, "maximum": 3600}, {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?(s|m)?\s*$"}]}
)

_KEEP_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "number", "minimum": 0, "maximum": 3600}, {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?(s|m)?\s*$"}]}
)


def seconds(value: object, *, least: float, most: float) -> float:
    """A duration as links.yaml may give one: a number of seconds, or text such as "30s" or "2m"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError('must be a duration: a number of seconds, or text such as "30s" or "2m"')
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if not match:
            raise ValueError(f'{value!r} is not a duration such as "30s" or "2m"')
        value = float(match.group(1)) * (60 if match.group(2) == "m" else 1)
    if not least <= value <= most:
        raise ValueError(f"must be between {least:g} and {most:g} seconds")
    return float(value)


class SshSettings(BaseModel):
    """`provider.ssh`: how gateways are reached (the OpenSSH client, see ssh.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    config: str | None = Field(
        default=None,
        description="OpenSSH client config file, relative to links.yaml; default: ssh's own (~/.ssh/config).",
    )
    parallelism: int = Field(default=10, ge=1, le=256, description="Gateways worked on at once.")
    timeout: Annotated[float, _DURATION_SCHEMA] = Field(
        default=30.0, description='Per gateway operation: seconds, or text such as "30s" or "2m".'
    )
    keep_connections: Annotated[float, _KEEP_SCHEMA] = Field(
        default=0.0,
        description="Keep each gateway's SSH connection this long after a run, for the next run to reuse instead of "
        'logging in again (as Ansible\'s ControlPersist): seconds, or text such as "60s" or "10m"; 0 (default): '
        "every run logs in and ends its connections.",
    )

    @field_validator("config")
    @classmethod
    def _config(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in "\n\r\x00")):
            raise ValueError("must be a file path on one line")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: object) -> float:
        return seconds(value, least=1, most=3600)

    @field_validator("keep_connections", mode="before")
    @classmethod
    def _keep_connections(cls, value: object) -> float:
        if value is False:
            return 0.0
        if value is True:
            raise ValueError('must say how long: a number of seconds, or text such as "60s" or "10m" (false or 0: off)')
        kept = seconds(value, least=0, most=3600)
        if 0 < kept < 1:
            raise ValueError("must be 0 (off) or between 1 and 3600 seconds")
        return kept


class WireGuardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    output_dir: str = Field(default="wireguard", description="Folder for configs, relative to links.yaml.")
    interface: str = Field(default="wgsky0", pattern=INTERFACE_PATTERN, description="wg-quick interface name.")
    address_pool: str = Field(default="100.96.0.0/16", description="Overlay addresses, one per cluster.")
    listen_port: int = Field(default=51820, ge=1, le=65535, description="Default ListenPort.")
    persistent_keepalive: int = Field(default=25, ge=0, le=65535, description="Seconds; 0 turns it off.")
    mtu: int | None = Field(default=None, ge=576, le=65535, description="Interface MTU, if set.")
    on_change: list[str] | None = Field(
        default=None,
        description="argv run for each cluster whose config changed; jinja2 with cluster, interface, config_path, address.",
    )
    status_command: list[str] | None = Field(
        default=None,
        description="argv that prints `wg show <iface> dump` for a cluster; jinja2 with cluster, interface.",
    )
    hook_timeout: Annotated[float, _DURATION_SCHEMA] = Field(
        default=60.0,
        description='on_change and status_command are killed after this: seconds, or text such as "60s" or "2m".',
    )
    preshared_keys: bool = Field(default=False, description="Default of links[].preshared_key: a preshared key for each peering.")
    ssh: SshSettings = Field(default_factory=SshSettings, description="How gateways are reached over SSH.")

    @field_validator("hook_timeout", mode="before")
    @classmethod
    def _hook_timeout(cls, value: object) -> float:
        return seconds(value, least=1, most=3600)

    @field_validator("address_pool")
    @classmethod
    def _pool(cls, value: str) -> str:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not a network in CIDR form: {exc}") from None
        zone = getattr(network.network_address, "scope_id", None)
        if zone is not None:
            raise ValueError(f"'{value}' has a zone index ('%{zone}'), {ZONE_REASON}")
        return str(network)

    @field_validator("output_dir")
    @classmethod
    def _output_dir(cls, value: str, info: ValidationInfo) -> str:
        if not value or any(c in value for c in "\n\r\x00"):
            raise ValueError("must be a folder path on one line")
        read_back = (info.context or {}).get(READ_BACK)
        if read_back is not None and value != getattr(read_back.configured, "output_dir", None):
            # Only the configuration may send configs (and their deletion) elsewhere; a folder
            # named by a state or a plan stays inside the workspace.
            root = os.path.normpath(read_back.root)
            folder = os.path.normpath(os.path.join(root, value))
            if folder != root and not folder.startswith(root + os.sep):
                raise ValueError(f"'{value}' is outside the workspace, and it is not the configuration's output_dir")
        return value

    @field_validator("on_change", "status_command")
    @classmethod
    def _argv(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must name a program: a non-empty list of arguments")
        from skyplan_wireguard import hooks

        # Rendered once with stand-in values, within the same limits as for real: a template
        # that loops for ever, recurses or names an unknown variable fails here, before apply
        # has written anything. (One that misbehaves only for some cluster fails at apply.)
        stand_ins = hooks.ON_CHANGE_VARIABLES if info.field_name == "on_change" else hooks.STATUS_VARIABLES
        try:
            hooks.render_argv(value, stand_ins)
        except hooks.ArgvTemplateError as exc:
            if exc.kind != "error":  # an error of the template's own logic may depend on the values
                raise
        return value
