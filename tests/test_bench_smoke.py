"""The benchmark runs end to end on a tiny workspace; it prints numbers, so nothing here is timed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.measure import Run
from bench.report import TARGETS, Measurement, render_targets

REPO = Path(__file__).resolve().parents[1]
OPERATIONS = (
    "skyplan validate",
    "skyplan apply (from empty)",
    "skyplan plan (no change)",
    "skyplan plan (file just edited)",
    "skyctl get link",
    "skyctl create link",
    "skyctl delete link",
)


def bench(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--workdir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def table_row(stdout: str, operation: str) -> list[str]:
    """links, clusters, runs, then the numbers and the result of `operation`'s row."""
    row = next(line for line in stdout.splitlines() if line.startswith(operation + "  "))
    return row[len(operation):].split()


def targets_section(stdout: str) -> dict[str, str]:
    """The targets section: each issue row's work -> the rest of its line."""
    lines = stdout.split("Targets (issue 15")[1].splitlines()[3:]
    rows = {}
    for line in lines:
        if not line.strip() or line.startswith("whole run"):
            break
        work = max((t.work for t in TARGETS if line.startswith(t.work)), key=len)  # the longest: one may start another
        rows[work] = line[len(work):].strip()
    return rows


def test_quick_bench_completes_and_prints_its_table(tmp_path):
    stdout = bench(tmp_path, "--quick", "--sizes", "50", "--repeat", "1", "--mesh", "4", "--no-terraform")
    header = next(line for line in stdout.splitlines() if line.startswith("operation"))
    assert header.split() == [
        "operation", "links", "clusters", "runs", "median", "s", "min", "s", "max", "s", "cpu", "s", "peak", "MB", "target", "result"
    ]
    # Each operation ran once and passed the bench's own checks (configs written, no changes, ...);
    # a failed check leaves 0 runs and the problem in the result column.
    for operation in OPERATIONS:
        links, clusters, runs, *_ = table_row(stdout, operation)
        assert (links, runs) == ("50", "1"), operation
    # The full mesh of 4 clusters (6 links) by both tools, each checked: 4 configs of 3 peers.
    for operation in ("skyplan apply (full mesh)", "wg-meshconf genconfig (full mesh)"):
        assert table_row(stdout, operation)[:3] == ["6", "4", "1"], operation
    assert re.search(r"full mesh: skyplan apply / wg-meshconf genconfig, 6 links over 4 clusters: [\d.]+ s / [\d.]+ s = [\d.]+x", stdout)
    # Every row of the table is in the targets section, each saying why it has no figure
    # at these sizes.
    rows = targets_section(stdout)
    assert list(rows) == [t.work for t in TARGETS]
    assert "not measured: skyplan apply (from empty) not run at 10,000 links" in rows["10k links: apply from empty"]
    assert "not run (no Terraform asked for)" in rows["1,100 resources: Terraform 1.11 apply / skyplan apply"]
    assert "not run (--gateways 0)" in rows["20 SSH gateways: one-link change"]
    assert "not measured: skyplan apply (full mesh) not run at 200 clusters" in rows[TARGETS[0].work]


def test_terraform_rows_and_ratio_at_a_tiny_size(tmp_path):
    """Terraform, when there is one, applies the same resources and the ratio terraform/skyplan is printed."""
    stdout = bench(tmp_path, "--sizes", "20", "--terraform-sizes", "20", "--repeat", "1", "--mesh", "0", "--gateways", "0")
    if shutil.which("terraform") is None:
        assert "not measured: terraform is not on PATH" in stdout
        return
    assert table_row(stdout, "terraform apply (from empty)")[:3] == ["20", "10", "1"]
    assert table_row(stdout, "terraform plan (no change)")[:3] == ["20", "10", "1"]
    assert re.search(r"apply from empty: terraform / skyplan, 20 links over 10 clusters: [\d.]+ s / [\d.]+ s = [\d.]+x", stdout)


def test_a_small_command_s_peak_memory_is_its_own_not_the_bench_s(tmp_path):
    """The bench may hold hundreds of MB (a 100,000-link topology); a command it times must not
    be reported with the bench's resident set as its own (Linux's ru_maxrss of a forked child)."""
    from bench.measure import run_process

    held = bytearray(200 * 1024 * 1024)
    held[:: 4096] = b"\1" * len(held[:: 4096])  # touched, so resident
    small = run_process([sys.executable, "-c", "pass"], tmp_path, {"PATH": "/usr/bin:/bin"})
    large = run_process([sys.executable, "-c", "b = bytearray(150 * 1024 * 1024); b[::4096] = b'1' * len(b[::4096])"], tmp_path,
                        {"PATH": "/usr/bin:/bin"})
    del held
    assert (small.exit_code, large.exit_code) == (0, 0)
    assert small.peak_mb < 100, small
    assert 150 < large.peak_mb < 300, large


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    from bench.measure import run_process

    script = f"sleep 60 & echo $! > {tmp_path / 'child.pid'}; wait"
    run = run_process(["sh", "-c", script], tmp_path, {"PATH": "/usr/bin:/bin"}, timeout=0.5)
    assert run.timed_out and run.exit_code == -9 and run.seconds < 30
    child = int((tmp_path / "child.pid").read_text())
    for _ in range(100):  # the kill is sent; the orphan is reaped by init a moment later
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the timed-out command's child {child} still runs")
    assert not run_process(["sh", "-c", "exit 3"], tmp_path, {"PATH": "/usr/bin:/bin"}).timed_out


def measured(operation: str, links: int, clusters: int, *seconds: float, peak_mb: float = 50.0) -> Measurement:
    runs = [Run(seconds=s, cpu_seconds=s, peak_mb=peak_mb, exit_code=0, timed_out=False, output="") for s in seconds]
    return Measurement(operation, links, clusters, runs=runs)


def test_targets_say_pass_or_miss_and_by_how_much():
    measurements = [
        measured("skyplan apply (from empty)", 10_000, 1_000, 1.0, 2.0, 1.8, peak_mb=120),  # median 1.8
        measured("skyplan plan (no change)", 10_000, 1_000, 0.3),
        measured("skyplan apply (from empty)", 100_000, 10_000, 9.0, peak_mb=1024),  # 1024 MiB is not < 1 GiB
        measured("skyplan apply (full mesh)", 19_900, 200, 1.0),
        measured("wg-meshconf genconfig (full mesh)", 19_900, 200, 2.5),
        measured("skyplan apply (from empty)", 1_000, 100, 1.0),
        measured("terraform apply (from empty)", 1_000, 100, 15.0),
        Measurement("gateways: skyplan apply (one-link change)", 20, 20, problem="skipped: needs root"),
    ]
    rows = targets_section(render_targets(measurements, {"skyplan plan (file just edited)": "not run (on purpose)"}))
    assert rows["10k links: apply from empty"].split() == ["1.800", "s", "<=", "1.2", "s", "MISS", "by", "1.50x", "(+0.60", "s)"]
    assert rows["10k links: no-change plan"].endswith("pass (0.75x the limit)")
    assert rows["10k links: peak memory of the apply (kept from round 1)"].endswith("pass (0.40x the limit)")
    assert rows["100k links over 10k clusters: apply from empty"].endswith("pass (0.90x the limit)")
    assert rows["100k links over 10k clusters: peak memory of the apply"].endswith("< 1024 MiB  MISS by 1.00x (+0 MiB)")
    assert rows[TARGETS[0].work].startswith("0.40x (1.00 s / 2.50 s)") and rows[TARGETS[0].work].endswith("pass (0.80x the limit)")
    terraform = rows["1,100 resources: Terraform 1.11 apply / skyplan apply"]
    assert terraform.startswith("15.00x (15.00 s / 1.00 s)") and terraform.endswith("MISS by 1.33x (0.75x the minimum)")
    assert rows["10k links: cold plan (file just edited)"].endswith("not run (on purpose)")
    assert rows["20 SSH gateways: one-link change"].endswith("not measured: gateways: skyplan apply (one-link change): skipped: needs root")
    # The table's own columns carry the single-measurement targets of its row.
    apply_10k = measurements[0].row()
    assert apply_10k[-2:] == ("<= 1.2 s, <= 300 MiB", "MISS: time 1.5x over")


def test_without_wg_meshconf_skyplan_is_still_timed_and_the_row_says_why(tmp_path, monkeypatch):
    from bench import meshconf, run

    monkeypatch.setattr(meshconf, "find_or_install", lambda: (None, "wg-meshconf is not installed and did not install: no network"))
    b = run.Bench(repeat=1, timeout=120)
    b.run_full_mesh(3, tmp_path)
    ours, theirs = b.measurements
    assert ours.operation == "skyplan apply (full mesh)" and ours.complete
    assert theirs.problem == "wg-meshconf is not installed and did not install: no network" and not theirs.runs
    rows = targets_section(render_targets(b.measurements))
    assert "not run at 200 clusters" in rows[TARGETS[0].work]


def test_gateway_rows_say_why_they_were_skipped(tmp_path, monkeypatch):
    import tests.e2e.gateways as lab
    from bench import run

    monkeypatch.setattr(lab, "missing_gateway_prerequisites", lambda: ["root: network namespaces and TUN devices need it"])
    b = run.Bench(repeat=1, timeout=120)
    b.run_gateways(20, tmp_path, rounds=1)
    assert [(m.operation, m.clusters, m.problem) for m in b.measurements] == [
        (operation, 20, "skipped: needs root: network namespaces and TUN devices need it") for operation in run.GATEWAY_OPERATIONS.values()
    ]
    rows = targets_section(render_targets(b.measurements))
    assert rows["20 SSH gateways: no-change plan"].endswith("not measured: gateways: skyplan plan (no change): skipped: needs root: "
                                                           "network namespaces and TUN devices need it")


@pytest.mark.e2e
def test_gateway_bench_applies_plans_and_changes_one_link_on_two_gateways(tmp_path):
    """Three real gateways (sshd in namespaces); Ansible left out here, as it installs from PyPI."""
    from tests.e2e.gateways import missing_gateway_prerequisites

    missing = missing_gateway_prerequisites()
    if missing:
        pytest.fail("the gateway bench needs, and this machine lacks:\n  - " + "\n  - ".join(missing), pytrace=False)
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench.gateways", "--gateways", "3", "--no-ansible", "--workdir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = bench.communicate(timeout=300)
    assert bench.returncode == 0, stderr
    lines = stdout.splitlines()
    header = re.split(r"\s{2,}", next(line for line in lines if line.startswith("tool ")))

    def row(run: str) -> dict[str, str]:
        line = next(line for line in lines if re.match(rf"skyplan\s+{run}\s", line))
        return dict(zip(header, re.split(r"\s{2,}", line.strip())))

    first, plan, change = row("first apply"), row("no-change run"), row("one-link change")
    # With keep_connections, the first apply still logs in to every gateway; the runs after it
    # use its connections and log in nowhere, and pass the same checks.
    kept = [dict(zip(header, re.split(r"\s{2,}", next(line for line in lines if re.match(rf"skyplan keep_connections=60s\s+{run}\s", line)).strip())))
            for run in ("first apply", "no-change run", "one-link change")]
    assert [r.get("logins") for r in (first, plan, change)] == ["3", "3", "3"]
    assert [r.get("logins") for r in kept] == ["3", "0", "0"], stdout
    assert [r.get("check") for r in kept] == ["ok", "ok", "ok"] and [r.get("written") for r in kept] == ["3", "0", "2"]
    # Each run passed the bench's own checks (every interface up, one peer per link, a route for
    # every AllowedIPs entry) and wrote configs on all 3 gateways, then on none, then on the new
    # link's two ends only.
    assert [r.get("check") for r in (first, plan, change)] == ["ok", "ok", "ok"], stdout
    assert [r.get("written") for r in (first, plan, change)] == ["3", "0", "2"]
    # The keys were made on the gateways: none of them is in any file of the workspace.
    assert [r.get("keys here") for r in (first, plan, change)] == ["0/3", "0/3", "0/3"]
    assert (first["command"], plan["command"], change["command"]) == ("skyplan apply", "skyplan plan", "skyplan apply")
    assert "skyplan: config written on g01, g03;" in stdout
    # The lab is gone: no namespace of the bench's process is left.
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"skye2e-{bench.pid}-" not in left


def run_gateway_operations() -> list[str]:
    from bench.run import GATEWAY_OPERATIONS

    return list(GATEWAY_OPERATIONS.values())


def test_a_gateway_lab_that_does_not_start_costs_only_its_rows(tmp_path, monkeypatch):
    import tests.e2e.gateways as lab
    from bench import run

    def broken(self):
        raise lab.LabError("cannot build the gateway lab; missing:\n  - sshd")

    monkeypatch.setattr(lab, "missing_gateway_prerequisites", lambda: [])
    monkeypatch.setattr(lab.GatewayLab, "start", broken)
    monkeypatch.setattr(lab.GatewayLab, "close", lambda self: None)
    b = run.Bench(repeat=1, timeout=120)
    b.run_gateways(20, tmp_path, rounds=1)
    assert [(m.operation, m.runs, m.problem) for m in b.measurements] == [
        (operation, [], "lab failed: LabError: cannot build the gateway lab; missing:") for operation in run.GATEWAY_OPERATIONS.values()
    ]


@pytest.mark.e2e
def test_bench_s_gateway_rows_come_from_the_gateway_bench(tmp_path):
    """`python -m bench --gateways 3`: the gateway bench's three skyplan runs, checked by it, as rows of the table."""
    from tests.e2e.gateways import missing_gateway_prerequisites

    missing = missing_gateway_prerequisites()
    if missing:
        pytest.fail("the gateway rows need, and this machine lacks:\n  - " + "\n  - ".join(missing), pytrace=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", "--sizes", "none", "--mesh", "0", "--gateways", "3", "--repeat", "1", "--no-terraform",
         "--workdir", str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    # links, clusters (gateways), runs: a chain of 2 links, closed into a ring by the change; each
    # run passed the gateway bench's checks (configs written where they should be, interfaces up,
    # peers and routes), or its result column would say what failed.
    # With no target at 3 gateways, a row is its 3 counts and 5 numbers, and nothing in the result column.
    assert table_row(stdout, "gateways: skyplan apply (first)")[:3] == ["2", "3", "1"]
    assert table_row(stdout, "gateways: skyplan plan (no change)")[:3] == ["2", "3", "1"]
    assert table_row(stdout, "gateways: skyplan apply (one-link change)")[:3] == ["3", "3", "1"]
    assert table_row(stdout, "gateways, keep_connections 60s: skyplan plan (no change, kept)")[:3] == ["2", "3", "1"]
    assert [len(table_row(stdout, operation)) for operation in run_gateway_operations()] == [8] * 6, stdout
    assert "not measured: gateways: skyplan apply (one-link change) not run at 20 clusters" in targets_section(stdout)["20 SSH gateways: one-link change"]
    # The lab is gone: no namespace of the bench's process is left.
    assert f"skye2e-{process.pid}-" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
