"""The printed results: one table of operations by size, growth ratios, and skyplan vs Terraform."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.measure import Run

# The targets, stated for 10,000 links over 1,000 clusters on a 2-core machine.
TARGET_SIZE = 10_000
TARGET_SECONDS = {
    "skyplan apply (from empty)": 3.0,
    "skyplan plan (no change)": 1.0,
    "skyctl get link": 0.3,
    "skyctl create link": 0.5,
}
TARGET_MB = {"skyplan apply (from empty)": 300.0}
TARGET_GROWTH = 12.0  # from 1,000 to 10,000 links, for apply and plan
GROWTH_OPERATIONS = ("skyplan apply (from empty)", "skyplan plan (no change)")
COMPARED = {"apply (from empty)": ("skyplan apply (from empty)", "terraform apply (from empty)"),
            "plan (no change)": ("skyplan plan (no change)", "terraform plan (no change)")}

HEADER = ("operation", "links", "clusters", "runs", "median s", "min s", "max s", "cpu s", "peak MB", "target", "result")


@dataclass
class Measurement:
    """All runs of one operation at one size; `problem` says why there are fewer than asked."""

    operation: str
    links: int
    clusters: int
    runs: list[Run] = field(default_factory=list)
    problem: str | None = None

    @property
    def complete(self) -> bool:
        return bool(self.runs) and self.problem is None

    @property
    def median(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def cpu_median(self) -> float:
        return statistics.median(run.cpu_seconds for run in self.runs)

    @property
    def peak_mb(self) -> float:
        return max(run.peak_mb for run in self.runs)

    def target(self) -> str:
        if self.links != TARGET_SIZE:
            return ""
        parts = []
        if self.operation in TARGET_SECONDS:
            parts.append(f"<= {TARGET_SECONDS[self.operation]:g} s")
        if self.operation in TARGET_MB:
            parts.append(f"<= {TARGET_MB[self.operation]:g} MB")
        return ", ".join(parts)

    def result(self) -> str:
        if self.problem:
            return self.problem
        if not self.target():
            return ""
        missed = []
        if self.operation in TARGET_SECONDS and self.median > TARGET_SECONDS[self.operation]:
            missed.append(f"time {self.median / TARGET_SECONDS[self.operation]:.1f}x over")
        if self.operation in TARGET_MB and self.peak_mb > TARGET_MB[self.operation]:
            missed.append(f"memory {self.peak_mb / TARGET_MB[self.operation]:.1f}x over")
        return "MISS: " + ", ".join(missed) if missed else "pass"

    def row(self) -> tuple[str, ...]:
        if not self.runs:
            numbers = ("", "", "", "", "")
        else:
            times = [run.seconds for run in self.runs]
            numbers = (f"{self.median:.3f}", f"{min(times):.3f}", f"{max(times):.3f}", f"{self.cpu_median:.3f}", f"{self.peak_mb:.0f}")
        return (self.operation, f"{self.links:,}", f"{self.clusters:,}", str(len(self.runs)), *numbers, self.target(), self.result())


def render_table(measurements: list[Measurement]) -> str:
    rows = [HEADER, *(m.row() for m in measurements)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = {1, 2, 3, 4, 5, 6, 7, 8}  # numbers line up on the right

    def line(row: tuple[str, ...]) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(HEADER), rule, *(line(row) for row in rows[1:])]) + "\n"


def render_growth(measurements: list[Measurement], sizes: list[int]) -> str:
    found = {(m.operation, m.links): m for m in measurements if m.complete}
    lines = []
    for small, large in zip(sizes, sizes[1:]):
        for operation in GROWTH_OPERATIONS:
            a, b = found.get((operation, small)), found.get((operation, large))
            if a is None or b is None:
                lines.append(f"  {operation}: {small:,} -> {large:,} links: not measured at both sizes")
                continue
            ratio = b.median / a.median
            verdict = ""
            if (small, large) == (1_000, 10_000):
                verdict = f"  (target <= {TARGET_GROWTH:g}x: {'pass' if ratio <= TARGET_GROWTH else 'MISS'})"
            # CPU time grows with the work alone; wall time also with fsync waits and load.
            lines.append(
                f"  {operation}: {small:,} -> {large:,} links ({large / small:g}x): "
                f"{a.median:.3f} s -> {b.median:.3f} s = {ratio:.1f}x{verdict}; cpu {b.cpu_median / a.cpu_median:.1f}x"
            )
    return "Growth (median wall time):\n" + "\n".join(lines) + "\n" if lines else ""


def render_comparison(measurements: list[Measurement]) -> str:
    found = {(m.operation, m.links): m for m in measurements if m.complete}
    lines = []
    for size in sorted({m.links for m in measurements}):
        for name, (ours, theirs) in COMPARED.items():
            a, b = found.get((ours, size)), found.get((theirs, size))
            if a is None or b is None:
                continue
            lines.append(
                f"  {name}, {size:,} links: skyplan {a.median:.3f} s / terraform {b.median:.3f} s = {a.median / b.median:.2f}x"
                f"  (peak MB {a.peak_mb:.0f} / {b.peak_mb:.0f})"
            )
    return "skyplan / terraform (median wall time; below 1 means skyplan is faster):\n" + "\n".join(lines) + "\n" if lines else ""
