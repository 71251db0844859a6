"""The built-in WireGuard provider: keys, overlay addresses and wg-quick configs per cluster."""

from skyplan_wireguard.provider import WireGuardProvider

__all__ = ["WireGuardProvider"]
