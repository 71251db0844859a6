"""What the provider computes for a cluster (overlay address, public key), checked as read back.

Both reach every peer's config and the hooks' arguments, and a state can be written by anyone
with access to its store: a value that is not exactly an address or a key is refused. They are
held to the same rules as the arguments that pin them (arguments.py).
"""

from __future__ import annotations

from skyplan_wireguard.arguments import ClusterArguments


class ClusterComputed(ClusterArguments):
    """`address` and `public_key` as apply computed them; other keys are ignored: nothing reads them."""
