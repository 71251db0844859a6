"""`skyctl`: SkyShift's imperative link commands, as one-resource plans on skyplan's engine."""

from __future__ import annotations

import click

from skyplan import __version__
from skyplan.cli.common import GuardedGroup


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="skyctl", message="%(prog)s %(version)s")
def main() -> None:
    """Create, get and delete links between clusters (SkyShift's skyctl)."""
