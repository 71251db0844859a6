"""The WireGuard arguments of clusters and links, checked as read back from a state.

An external peer's `public_key`, a pinned `address`, a link's `preshared_key` and `transit_hub`
reach every peer's config and decide where keys are written; a state can be written by anyone
with access to its store, so a value that is not exactly what links.yaml allows is refused.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from skyplan.sdk import ZONE_REASON
from skyplan_wireguard import keys

PUBLIC_KEY_REASON = "is not a WireGuard public key (44 characters of canonical base64)"


def address_text(value: str) -> str:
    """`value` if it is an IP address written as skyplan writes one (no zone, no prefix)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    if getattr(address, "scope_id", None) is not None:
        raise ValueError(f"{value!r} has a zone index, {ZONE_REASON}")
    if str(address) != value:
        raise ValueError(f"{value!r} is not written as skyplan writes addresses ({address})")
    return value


def public_key_text(value: str) -> str:
    """`value` if it is a canonical WireGuard key."""
    if not keys.is_canonical(value):
        raise ValueError(PUBLIC_KEY_REASON)
    return value


class ClusterArguments(BaseModel):
    # Other keys are ignored: the core's rules and the settings model check them.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, defer_build=True)

    public_key: str | None = None
    address: str | None = None

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        return None if value is None else public_key_text(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else address_text(value)


class LinkArguments(BaseModel):
    # The ends are the core's (and checked by it), so they are no fields here: a link that
    # records neither field is not checked at all, which keeps the check off large states.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, defer_build=True)

    preshared_key: bool | None = None
    transit_hub: str | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _hub_is_an_end(cls, data: Any, handler) -> LinkArguments:
        arguments = handler(data)
        hub = arguments.transit_hub
        # Only a mesh's link from its hub records one: any other hub would route one cluster's
        # traffic through a third that the link does not join.
        if hub is not None and (not isinstance(data, dict) or hub not in (data.get("source"), data.get("target"))):
            raise ValueError(f"transit_hub {hub!r} is not one of the link's ends")
        return arguments
