"""`skyplan graph`: draw the mesh a configuration describes, or a saved plan's changes."""

from __future__ import annotations

from pathlib import Path

import click

from skyplan.cli.common import VersionedCommand, collect_variables, variables_options

DEFAULT_FILE = "links.yaml"


@click.command("graph", cls=VersionedCommand)
@click.argument("file", required=False, default=DEFAULT_FILE, metavar="[FILE|PLAN]")
@click.option(
    "--format", "fmt", type=click.Choice(["dot", "mermaid"]), default="dot", show_default=True,
    help="Graphviz DOT (`dot -Tsvg`) or Mermaid (renders in GitHub comments and Markdown).",
)
@variables_options
def graph(file: str, fmt: str, var_items: tuple[str, ...], var_files: tuple[str, ...]) -> None:
    """Print the mesh as a picture: clusters as nodes, links as edges, full meshes as one node.

    Given a plan saved with `skyplan plan --out PLAN`, colour what it changes: green to add,
    yellow to change, red (dashed) to destroy, purple to replace. Reads no state.
    """
    from skyplan.plan.saved import looks_like_plan_file
    from skyplan.render.graph import build_picture, items_from_desired, items_from_plan, render_graph

    if looks_like_plan_file(Path(file)):
        if var_items or var_files:
            raise click.UsageError("variables belong to a configuration, not to a saved plan")
        from skyplan.plan.saved import read_plan_file
        from skyplan.render.plan_text import NO_CHANGES, summary_line

        plan = read_plan_file(Path(file)).plan
        title = summary_line(plan) if plan.has_changes else NO_CHANGES
        picture = build_picture(items_from_plan(plan), title=title)
    else:
        from skyplan.config.loader import load_config
        from skyplan.plan.desired import desired_resources

        loaded = load_config(Path(file), display=file, variables=collect_variables(var_items, var_files))
        desired = desired_resources(loaded.config, loaded.provider_class, loaded.settings)
        picture = build_picture(items_from_desired(desired))
    click.echo(render_graph(picture, fmt), nl=False)
