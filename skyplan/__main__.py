"""`python -m skyplan` runs the skyplan CLI."""

from skyplan.cli.skyplan_cmd import main

main(prog_name="skyplan")
