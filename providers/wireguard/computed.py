"""What the provider computes for a cluster (overlay address, public key), checked as read back.

Both reach every peer's config and the hooks' arguments, and a state can be written by anyone
with access to its store: a value that is not exactly an address or a key is refused.
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, field_validator

from skyplan.sdk import ZONE_REASON
from skyplan_wireguard import keys


class ClusterComputed(BaseModel):
    # Other keys are ignored, not refused: nothing reads them.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, defer_build=True)

    address: str | None = None
    public_key: str | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
        if getattr(address, "scope_id", None) is not None:
            raise ValueError(f"{value!r} has a zone index, {ZONE_REASON}")
        if str(address) != value:
            raise ValueError(f"{value!r} is not written as skyplan writes addresses ({address})")
        return value

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        if value is not None and not keys.is_canonical(value):
            raise ValueError("is not a WireGuard public key (44 characters of canonical base64)")
        return value
