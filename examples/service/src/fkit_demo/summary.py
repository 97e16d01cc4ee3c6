"""What a workload run saw, from both ends: the HTTP answers and the scraped ``/metrics``."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Sample", "WorkloadSummary", "percentile", "scrape"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: its route, status (0: no answer), latency and whether it was expected."""

    route: str
    status: int
    seconds: float
    expected: bool


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def scrape(text: str, name: str, by: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """Sum the samples of metric ``name`` in a Prometheus text page, grouped by labels ``by``."""
    totals: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = tuple(sample.labels.get(label, "") for label in by)
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


@dataclass
class WorkloadSummary:
    """The outcome of :func:`fkit_demo.workload.run_workload`; ``ok`` when every check passed."""

    concurrency: int
    elapsed: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    transactions: dict[tuple[str, str], int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    retries_seen_by_clients: int = 0
    most_attempts: int = 0
    transfers: int = 0
    lock_skips: int = 0
    lock_skips_counted: int = 0
    locks_not_acquired: int = 0
    settle_runs: int = 0
    orders_created: int = 0
    orders_settled: int = 0
    final_settle: tuple[bool, int] | None = None
    money_before: int = 0
    money_after: int | None = None
    spans: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems

    @property
    def requests(self) -> int:
        """Requests sent."""
        return len(self.samples)

    @property
    def statuses(self) -> dict[int, int]:
        """Requests by HTTP status (0: no answer)."""
        return dict(sorted(Counter(s.status for s in self.samples).items()))

    @property
    def retry_total(self) -> int:
        """Retries counted by fkit-metrics."""
        return sum(self.retries.values())

    @property
    def span_total(self) -> int:
        """Spans recorded."""
        return sum(self.spans.values())

    def latency_ms(self, fraction: float) -> float:
        """A latency percentile over all requests, in milliseconds."""
        return percentile([s.seconds for s in self.samples], fraction) * 1000

    def check(self) -> None:
        """Fill ``problems`` with every expectation the run did not meet."""
        problems = self.problems
        problems.extend(f"unexpected answer: {text}" for text in self.unexpected)
        if self.money_after != self.money_before:
            problems.append(f"money not conserved: {self.money_before} -> {self.money_after}")
        if self.orders_settled != self.orders_created:
            problems.append(
                f"{self.orders_created} orders created but {self.orders_settled} settled"
            )
        if self.final_settle != (False, 0):
            problems.append(
                f"a settle run after all others did {self.final_settle}, not (False, 0)"
            )
        writes = sum(1 for s in self.samples if s.route.startswith("POST") and s.status < 300)
        commits = self.transactions.get(("transaction", "commit"), 0)
        if commits < writes:
            problems.append(f"{writes} writes answered but {commits} commits in the metrics")
        if self.retry_total != self.retries_seen_by_clients:
            problems.append(
                f"the metrics count {self.retry_total} retries, the clients saw "
                f"{self.retries_seen_by_clients}"
            )
        if not self.lock_skips == self.lock_skips_counted == self.locks_not_acquired:
            problems.append(
                f"lock skips disagree: {self.lock_skips} answered, {self.lock_skips_counted} "
                f"counted by the service, {self.locks_not_acquired} by fkit-metrics"
            )
        if self.concurrency > 1:
            if self.retry_total == 0:
                problems.append("no retries although concurrent transfers conflicted")
            if self.lock_skips == 0:
                problems.append("no lock skips although settle jobs ran concurrently")
        if self.span_total == 0:
            problems.append("no spans recorded")

    def render(self) -> str:
        """The summary as the terminal shows it."""
        ok = sum(1 for s in self.samples if s.expected)
        routes: dict[str, Counter[int]] = {}
        for s in self.samples:
            routes.setdefault(s.route, Counter())[s.status] += 1
        lines = [
            f"workload: {self.requests} requests at concurrency {self.concurrency} "
            f"in {self.elapsed:.2f} s ({ok} answered as expected)",
            "requests by status: "
            + ", ".join(f"{status}: {count}" for status, count in self.statuses.items()),
        ]
        for route, counts in sorted(routes.items()):
            shown = ", ".join(f"{n} x {status}" for status, n in sorted(counts.items()))
            lines.append(f"  {route:<28} {shown}")
        lines.append(
            "transactions (fkit_postgres_transactions_total): "
            + ", ".join(f"{k}/{o} {n}" for (k, o), n in sorted(self.transactions.items()))
        )
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.retries.items())) or "none"
        lines.append(
            f"retries (fkit_postgres_retries_total): {self.retry_total} ({reasons}); "
            f"{self.transfers} transfers, {self.retries_seen_by_clients} extra attempts seen, "
            f"at most {self.most_attempts} for one"
        )
        lines.append(
            f"lock skips: {self.lock_skips} of {self.settle_runs} concurrent settle runs "
            f"(fkit_demo_jobs_total skipped {self.lock_skips_counted}, "
            f"fkit_postgres_locks_not_acquired_total {self.locks_not_acquired})"
        )
        lines.append(
            f"orders: {self.orders_created} created, {self.orders_settled} settled; "
            f"a final settle run gave skipped={self.final_settle and self.final_settle[0]} "
            f"settled={self.final_settle and self.final_settle[1]}"
        )
        lines.append(
            f"latency: p50 {self.latency_ms(0.5):.1f} ms, p95 {self.latency_ms(0.95):.1f} ms"
        )
        conserved = "conserved" if self.money_after == self.money_before else "NOT conserved"
        lines.append(
            f"money: {self.money_before} cents before, {self.money_after} after: {conserved}"
        )
        top = sorted(self.spans.items(), key=lambda item: (-item[1], item[0]))[:6]
        lines.append(
            f"spans recorded: {self.span_total} ("
            + ", ".join(f"{name} {n}" for name, n in top)
            + (", ..." if len(self.spans) > len(top) else "")
            + ")"
        )
        lines.append(f"plugins: {', '.join(self.plugins)}")
        if self.ok:
            lines.append("checks: all passed")
        else:
            lines.append(f"checks: {len(self.problems)} FAILED")
            lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)
