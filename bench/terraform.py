"""The same workspace as Terraform sees it: one terraform_data resource per skyplan resource."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.generate import Topology


def terraform_binary() -> str | None:
    return shutil.which("terraform")


def main_tf(topology: Topology) -> str:
    """Clusters hold their endpoint and subnet; each link holds its ends and depends on both
    clusters, as skyplan applies links after the clusters they join."""
    blocks = []
    for name, endpoint, subnet in topology.clusters:
        blocks.append(
            f'resource "terraform_data" "cluster_{name}" {{\n'
            f"  input = {{ endpoint = {json.dumps(endpoint)}, subnets = [{json.dumps(subnet)}] }}\n"
            "}\n"
        )
    for name, source, target in topology.links:
        blocks.append(
            f'resource "terraform_data" "link_{name}" {{\n'
            f"  input      = {{ source = {json.dumps(source)}, target = {json.dumps(target)} }}\n"
            f"  depends_on = [terraform_data.cluster_{source}, terraform_data.cluster_{target}]\n"
            "}\n"
        )
    return "\n".join(blocks)


def terraform_env(scratch: Path) -> dict[str, str]:
    """An environment that keeps Terraform offline and away from the user's own settings."""
    cli_config = scratch / "terraformrc"
    cli_config.write_text("# empty: terraform_data is built in, so no provider needs installing\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}
    env.update(
        TF_CLI_CONFIG_FILE=str(cli_config),  # an existing empty file: the inherited one may be missing
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",  # no version check over the network, which would add its own latency
        NO_COLOR="1",
    )
    return env


def write_terraform_workspace(folder: Path, topology: Topology) -> None:
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "main.tf").write_text(main_tf(topology))


def clear_state(folder: Path) -> None:
    """Back to an empty state, keeping .terraform/ from init."""
    for name in ("terraform.tfstate", "terraform.tfstate.backup"):
        (folder / name).unlink(missing_ok=True)
