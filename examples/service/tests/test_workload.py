"""The workload runs the whole service in-process, over HTTP, against a real PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from fkit_demo.__main__ import main
from fkit_demo.summary import WorkloadSummary, percentile, scrape
from fkit_demo.workload import run_workload

if TYPE_CHECKING:
    from fkit_core.settings import BasePostgresConfig

HANG_GUARD = 120.0  # seconds; a healthy run takes a few


async def _database_facts(url: str) -> tuple[int, int, int, int]:
    """(accounts, their total balance, orders, orders not settled), read past the service."""
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM demo_accounts), (SELECT sum(balance_cents) FROM demo_accounts),"
            " (SELECT count(*) FROM demo_orders),"
            " (SELECT count(*) FROM demo_orders WHERE status <> 'settled' OR settled_at IS NULL)"
        )
    finally:
        await conn.close()
    assert row is not None
    return row[0], row[1], row[2], row[3]


@pytest.mark.asyncio
async def test_workload_under_contention_checks_out(
    demo_config: BasePostgresConfig, demo_url: str
) -> None:
    summary = await run_workload(demo_config, requests=120, concurrency=8, timeout=HANG_GUARD)
    print(summary.render())

    assert summary.problems == []
    assert summary.ok
    # Every request was answered, each with a status it was expected to get.
    assert summary.unexpected == []
    assert all(s.expected and s.status != 0 for s in summary.samples)
    assert set(summary.statuses) <= {200, 201, 404, 409}
    # The duplicate emails were refused by the database's unique constraint.
    duplicates = [s for s in summary.samples if s.route == "POST /users" and s.status == 409]
    assert len(duplicates) == 1
    # Concurrent SERIALIZABLE transfers really conflicted and were re-run by uow.run().
    assert summary.retry_total > 0
    assert set(summary.retries) <= {"SerializationFailureError", "DeadlockDetectedError"}
    assert summary.retry_total == summary.retries_seen_by_clients
    assert summary.money_after == summary.money_before > 0
    # Concurrent settle jobs really contended: all but the lock holder skipped.
    assert summary.settle_runs == 8
    assert 0 < summary.lock_skips < summary.settle_runs
    assert summary.lock_skips == summary.lock_skips_counted == summary.locks_not_acquired
    # The winner settled every order; running the job again changed nothing.
    assert summary.orders_settled == summary.orders_created > 0
    assert summary.final_settle == (False, 0)
    # The database itself agrees, read directly rather than through the service.
    accounts, total, orders, unsettled = await _database_facts(demo_url)
    assert (accounts, total) == (8, summary.money_before)
    assert (orders, unsettled) == (summary.orders_created, 0)
    # fkit-metrics counted the transactions: one commit per successful write at least, and
    # one error per failed attempt (the conflicts that were retried, the duplicate email,
    # the order for an unknown user); reads are queries, rolled back.
    writes = sum(1 for s in summary.samples if s.route.startswith("POST") and s.status < 300)
    assert summary.transactions[("transaction", "commit")] >= writes
    assert summary.transactions[("transaction", "error")] == summary.retry_total + 2
    assert summary.transactions[("query", "rollback")] > 0
    assert ("query", "error") not in summary.transactions
    # fkit-otel traced them.
    assert summary.spans["uow.transaction"] >= writes
    assert summary.spans["db.lock.wait"] == summary.settle_runs + 1
    # Every installed plugin was set up; otel and prometheus are the demo's configured ones.
    names = {line.split(" ", 1)[0] for line in summary.plugins}
    assert {"locks", "otel", "prometheus", "types"} <= names
    assert "otel (from fkit-otel, configured by the demo)" in summary.plugins
    assert "locks (auto-discovered from fkit-locks)" in summary.plugins


@pytest.mark.asyncio
async def test_workload_without_concurrency_has_no_contention(
    demo_config: BasePostgresConfig,
) -> None:
    summary = await run_workload(demo_config, requests=40, concurrency=1, timeout=HANG_GUARD)

    assert summary.problems == []
    assert summary.retry_total == 0
    assert summary.lock_skips == 0
    assert summary.orders_settled == summary.orders_created > 0
    assert summary.money_after == summary.money_before


def test_the_command_runs_the_workload_and_exits_zero(
    demo_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FKIT_DB_URL", demo_url)

    status = main(["--workload", "--requests", "30", "--concurrency", "4"])

    out = capsys.readouterr().out
    assert status == 0, out
    assert "fkit-demo: using the database in FKIT_DB_URL" in out
    assert "checks: all passed" in out
    assert "money: 800000 cents before, 800000 after: conserved" in out


def test_a_failed_check_fails_the_summary() -> None:
    summary = WorkloadSummary(concurrency=4, money_before=100, money_after=90)
    summary.final_settle = (False, 0)

    summary.check()

    assert not summary.ok
    assert "money not conserved: 100 -> 90" in summary.problems
    assert "no retries although concurrent transfers conflicted" in summary.problems
    assert "checks: " in summary.render()
    assert "FAILED" in summary.render()


def test_percentiles_and_scraping() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0
    page = (
        "# TYPE x_total counter\n"
        'x_total{kind="transaction",outcome="commit",engine="primary"} 3.0\n'
        'x_total{kind="transaction",outcome="commit",engine="replica-1"} 2.0\n'
        'x_total{kind="query",outcome="rollback",engine="primary"} 1.0\n'
    )
    assert scrape(page, "x_total", ("kind", "outcome")) == {
        ("transaction", "commit"): 5.0,
        ("query", "rollback"): 1.0,
    }
