"""Console-script entry points: process-wide settings a library must not impose, then the CLI."""

from __future__ import annotations

import gc


def _tune_collector() -> None:
    # A command builds its objects (state, plans, views) once and drops them all at exit. The
    # default thresholds re-scan them hundreds of times while they are being built, a quarter of
    # a `skyctl get` on 10,000 links; cycles are still collected, only less often.
    gc.set_threshold(200_000, 20, 20)


def skyplan() -> None:
    _tune_collector()
    from skyplan.cli.skyplan_cmd import main

    main(prog_name="skyplan")


def skyctl() -> None:
    _tune_collector()
    from skyplan.cli.skyctl_cmd import main

    main(prog_name="skyctl")
