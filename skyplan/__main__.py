"""`python -m skyplan` runs the skyplan CLI."""

from skyplan.cli.entry import skyplan

skyplan()
