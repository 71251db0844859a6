"""The printed results: one table of operations by size, growth, ratios, and the issue's targets met or missed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.measure import Run

TARGET_GROWTH = 12.0  # from 1,000 to 10,000 links, for apply and plan
GROWTH_OPERATIONS = ("skyplan apply (from empty)", "skyplan plan (no change)")

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

    def targets(self) -> list[Target]:
        """The issue's targets on this one measurement (ratios of two are in the targets section only)."""
        return [t for t in TARGETS if t.other is None and t.operation == self.operation and t.matches(self)]

    def target(self) -> str:
        return ", ".join(t.limit_text() for t in self.targets())

    def result(self) -> str:
        if self.problem:
            return self.problem
        targets = self.targets()
        if not targets:
            return ""
        missed = [f"{t.kind} {t.value_of(self) / t.limit:.1f}x over" for t in targets if not t.met(t.value_of(self))]
        return "MISS: " + ", ".join(missed) if missed else "pass"

    def row(self) -> tuple[str, ...]:
        if not self.runs:
            numbers = ("", "", "", "", "")
        else:
            times = [run.seconds for run in self.runs]
            numbers = (f"{self.median:.3f}", f"{min(times):.3f}", f"{max(times):.3f}", f"{self.cpu_median:.3f}", f"{self.peak_mb:.0f}")
        return (self.operation, f"{self.links:,}", f"{self.clusters:,}", str(len(self.runs)), *numbers, self.target(), self.result())


@dataclass(frozen=True)
class Target:
    """One row of the issue's table: a figure of one measurement (or the ratio of two) against a limit.

    `links` and `clusters`, when given, say which size the target is for. `kind` is "time"
    (median wall time, s), "memory" (peak RSS, MiB) or, with `other`, "ratio" of the two
    operations' median wall times. `at_least` turns the limit into a minimum; `strict` makes the
    bound exclusive (< rather than <=).
    """

    work: str
    operation: str
    limit: float
    links: int | None = None
    clusters: int | None = None
    kind: str = "time"
    other: str | None = None
    at_least: bool = False
    strict: bool = False

    def matches(self, m: Measurement) -> bool:
        return (self.links is None or m.links == self.links) and (self.clusters is None or m.clusters == self.clusters)

    def size_text(self) -> str:
        return " over ".join(f"{n:,} {what}" for n, what in ((self.links, "links"), (self.clusters, "clusters")) if n is not None)

    def value_of(self, m: Measurement) -> float:
        return m.peak_mb if self.kind == "memory" else m.median

    def met(self, value: float) -> bool:
        if self.at_least:
            return value > self.limit if self.strict else value >= self.limit
        return value < self.limit if self.strict else value <= self.limit

    def unit(self) -> str:
        return {"time": " s", "memory": " MiB", "ratio": "x"}[self.kind]

    def limit_text(self) -> str:
        sign = (">" if self.at_least else "<") + ("" if self.strict else "=")
        return f"{sign} {self.limit:g}{self.unit()}"

    def verdict(self, value: float) -> str:
        """pass or MISS, and how far from the limit: the figure as a multiple of it, and the difference."""
        share = value / self.limit
        difference = f"{value - self.limit:+.2f}{self.unit()}" if self.kind == "time" else f"{value - self.limit:+.0f}{self.unit()}" if self.kind == "memory" else ""
        if self.met(value):
            return f"pass ({share:.2f}x the {'minimum' if self.at_least else 'limit'})"
        if self.at_least:
            return f"MISS by {self.limit / value:.2f}x ({share:.2f}x the minimum)"
        return f"MISS by {share:.2f}x ({difference})" if difference else f"MISS by {share:.2f}x"


def _find(measurements: list[Measurement], operation: str, target: Target) -> Measurement | None:
    return next((m for m in measurements if m.operation == operation and target.matches(m)), None)


def render_targets(measurements: list[Measurement], absent: dict[str, str] | None = None) -> str:
    """Each issue row: what was measured, the target, pass or MISS and by how much.

    `absent` says why an operation was not run at all (its name -> reason), for rows that would
    otherwise only say "not measured".
    """
    absent = absent or {}
    rows = [("work", "measured", "target", "result")]
    for target in TARGETS:
        parts = [_find(measurements, op, target) for op in (target.operation, target.other) if op]
        missing = next((op for op, m in zip((target.operation, target.other), parts) if m is None), None)
        failed = next((m for m in parts if m is not None and not m.complete), None)
        if missing:
            rows.append((target.work, "-", target.limit_text(), absent.get(missing, f"not measured: {missing} not run at {target.size_text()}")))
        elif failed:
            rows.append((target.work, "-", target.limit_text(), f"not measured: {failed.operation}: {failed.problem or 'no runs'}"))
        elif target.kind == "ratio":
            a, b = parts
            value = a.median / b.median
            rows.append((target.work, f"{value:.2f}x ({a.median:.2f} s / {b.median:.2f} s)", target.limit_text(), target.verdict(value)))
        else:
            value = target.value_of(parts[0])
            shown = f"{value:.3f} s" if target.kind == "time" else f"{value:.0f} MiB"
            rows.append((target.work, shown, target.limit_text(), target.verdict(value)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join([*(cell.ljust(widths[i]) if i != 1 else cell.rjust(widths[i]) for i, cell in enumerate(row[:3])), row[3]]).rstrip()

    met = sum(1 for row in rows[1:] if row[3].startswith("pass"))
    missed = sum(1 for row in rows[1:] if row[3].startswith("MISS"))
    summary = f"{met} met, {missed} missed, {len(rows) - 1 - met - missed} not measured"
    rule = "  ".join("-" * w for w in widths) + "  " + "-" * 6
    return f"Targets (issue 15; times are median wall s): {summary}\n" + "\n".join([line(rows[0]), rule, *(line(r) for r in rows[1:])]) + "\n"


# The targets (issue 15), on a 2-core machine.
TARGETS: tuple[Target, ...] = (
    Target("200-node full mesh (19,900 links): skyplan apply / wg-meshconf genconfig",
           "skyplan apply (full mesh)", 0.5, clusters=200, kind="ratio", other="wg-meshconf genconfig (full mesh)"),
    Target("10k links: apply from empty", "skyplan apply (from empty)", 1.2, links=10_000),
    Target("10k links: no-change plan", "skyplan plan (no change)", 0.4, links=10_000),
    # The same plan as the first after an apply (or in a fresh checkout): no record to go by.
    Target("10k links: no-change plan, first after the apply", "skyplan plan (no change, first after the apply)", 0.4,
           links=10_000),
    Target("10k links: cold plan (file just edited)", "skyplan plan (file just edited)", 0.8, links=10_000),
    Target("10k links: skyctl get link", "skyctl get link", 0.15, links=10_000),
    Target("10k links: skyctl create link (kept from round 1)", "skyctl create link", 0.5, links=10_000),
    Target("10k links: peak memory of the apply (kept from round 1)", "skyplan apply (from empty)", 300.0, links=10_000, kind="memory"),
    Target("100k links over 10k clusters: apply from empty", "skyplan apply (from empty)", 10.0, links=100_000),
    Target("100k links over 10k clusters: no-change plan", "skyplan plan (no change)", 2.5, links=100_000),
    Target("100k links over 10k clusters: no-change plan, first after the apply", "skyplan plan (no change, first after the apply)",
           2.5, links=100_000),
    Target("100k links over 10k clusters: peak memory of the apply", "skyplan apply (from empty)", 1024.0, links=100_000,
           kind="memory", strict=True),
    Target("1,100 resources: Terraform 1.11 apply / skyplan apply", "terraform apply (from empty)", 20.0,
           links=1_000, kind="ratio", other="skyplan apply (from empty)", at_least=True),
    Target("20 SSH gateways: one-link change", "gateways: skyplan apply (one-link change)", 1.0, clusters=20),
    Target("20 SSH gateways: no-change plan", "gateways: skyplan plan (no change)", 1.0, clusters=20),
    # The same two with provider.ssh.keep_connections, opt-in: a run after one that logged in.
    Target("20 SSH gateways, keep_connections: one-link change", "gateways, keep_connections 60s: skyplan apply (one-link change, kept)",
           1.0, clusters=20),
    Target("20 SSH gateways, keep_connections: no-change plan", "gateways, keep_connections 60s: skyplan plan (no change, kept)",
           1.0, clusters=20),
)


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


# (name, numerator, denominator, what a ratio above 1 means)
RATIOS = (
    ("full mesh: skyplan apply / wg-meshconf genconfig", "skyplan apply (full mesh)", "wg-meshconf genconfig (full mesh)", "below 1: skyplan is faster"),
    ("apply from empty: terraform / skyplan", "terraform apply (from empty)", "skyplan apply (from empty)", "above 1: skyplan is faster"),
    ("no-change plan: terraform / skyplan", "terraform plan (no change)", "skyplan plan (no change)", "above 1: skyplan is faster"),
)


def render_ratios(measurements: list[Measurement]) -> str:
    """Every ratio of two tools measured at the same size in this run (median wall time)."""
    found = {(m.operation, m.links, m.clusters): m for m in measurements if m.complete}
    lines = []
    for name, ours, theirs, meaning in RATIOS:
        for (operation, links, clusters), a in found.items():
            b = found.get((theirs, links, clusters))
            if operation != ours or b is None:
                continue
            lines.append(
                f"  {name}, {links:,} links over {clusters:,} clusters: {a.median:.3f} s / {b.median:.3f} s = {a.median / b.median:.2f}x"
                f" ({meaning}; cpu {a.cpu_median:.2f} s / {b.cpu_median:.2f} s; peak MB {a.peak_mb:.0f} / {b.peak_mb:.0f})"
            )
    return "Ratios (median wall time, same run):\n" + "\n".join(lines) + "\n" if lines else ""
