"""What the provider computes for a cluster (overlay address, public key), checked as read back.

Both reach every peer's config and the hooks' arguments, and a state can be written by anyone
with access to its store: a value that is not exactly an address or a key is refused.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

from skyplan_wireguard.arguments import address_text, public_key_text


class ClusterComputed(BaseModel):
    # Other keys are ignored, not refused: nothing reads them.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, defer_build=True)

    address: str | None = None
    public_key: str | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else address_text(value)

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        return None if value is None else public_key_text(value)
