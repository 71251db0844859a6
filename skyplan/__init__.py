"""skyplan: declarative WireGuard links between clusters."""

__version__ = "0.8.0"
