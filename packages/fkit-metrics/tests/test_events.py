"""Transactions, database errors, retries, lock waits and health checks, from the bus."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from fkit_core import (
    AsyncSQLAlchemyUnitOfWork,
    AsyncSQLAlchemyUowTransaction,
    DatabaseError,
    RetryConfig,
)
from fkit_core.errors import UniqueViolationError
from fkit_core.events import LockAcquired, LockNotAcquired, RetryScheduled
from fkit_metrics import PostgresMetrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from fkit_core import AsyncSessionManager

    from .conftest import Scrape

SERIALIZATION_FAILURE = (
    "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$"
)


@pytest.mark.asyncio
async def test_commits_rollbacks_and_cancellations_are_counted_by_kind_and_outcome(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(PostgresMetrics(registry=registry))
    await manager.start()
    for _ in range(3):
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1"))
    for _ in range(2):
        with pytest.raises(RuntimeError):
            async with manager.get_transaction() as session:
                await session.execute(text("SELECT 1"))
                raise RuntimeError("the body failed, so the transaction rolls back")
    started = asyncio.Event()

    async def cancelled() -> None:
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1"))
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(cancelled())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A read-only query is rolled back on purpose: outcome "rollback", kind "query".
    async with AsyncSQLAlchemyUnitOfWork(manager).query() as tx:
        await tx.session.execute(text("SELECT 1"))

    scraped = scrape()
    counted = {
        outcome: scraped.value(
            "fkit_postgres_transactions_total",
            manager="default",
            engine="primary",
            kind="transaction",
            outcome=outcome,
        )
        for outcome in ("commit", "error", "cancelled")
    }
    assert counted == {"commit": 3, "error": 2, "cancelled": 1}
    assert scraped.value("fkit_postgres_transactions_total", kind="query", outcome="rollback") == 1
    assert (
        scraped.value(
            "fkit_postgres_transaction_duration_seconds_count", kind="transaction", engine="primary"
        )
        == 6
    )


@pytest.mark.asyncio
async def test_a_failing_statement_counts_under_its_sqlstate_class(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(PostgresMetrics(registry=registry))
    await manager.start()
    with pytest.raises(DatabaseError):
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1 / 0"))  # 22012 division_by_zero
    with pytest.raises(UniqueViolationError):
        async with manager.get_transaction() as session:
            await session.execute(text("CREATE TEMP TABLE t (id int PRIMARY KEY) ON COMMIT DROP"))
            await session.execute(text("INSERT INTO t VALUES (1), (1)"))  # 23505
    scraped = scrape()
    assert (
        scraped.value(
            "fkit_postgres_errors_total",
            engine="primary",
            sqlstate_class="22",
            error="DatabaseError",
        )
        == 1
    )
    assert (
        scraped.value(
            "fkit_postgres_errors_total", sqlstate_class="23", error="UniqueViolationError"
        )
        == 1
    )
    assert len(scraped.matching("fkit_postgres_errors_total")) == 2


@pytest.mark.asyncio
async def test_a_unit_of_work_retry_is_counted_by_its_reason(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(PostgresMetrics(registry=registry))
    await manager.start()
    policy = RetryConfig(max_attempts=3, initial_delay=0.001, max_delay=0.01, jitter=False)
    uow = AsyncSQLAlchemyUnitOfWork(manager, retry=policy)
    attempts = 0

    async def work(tx: AsyncSQLAlchemyUowTransaction) -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:  # a real 40001 from the server, as a concurrent writer would cause
            await tx.session.execute(text(SERIALIZATION_FAILURE))
        return attempts

    assert await uow.run(work) == 2
    scraped = scrape()
    assert scraped.value("fkit_postgres_retries_total", reason="SerializationFailureError") == 1
    assert (
        scraped.value(
            "fkit_postgres_errors_total", sqlstate_class="40", error="SerializationFailureError"
        )
        == 1
    )
    assert scraped.value("fkit_postgres_transactions_total", outcome="error") == 1
    assert scraped.value("fkit_postgres_transactions_total", outcome="commit") == 1


@pytest.mark.asyncio
async def test_retry_reasons_that_are_not_class_names_are_never_labels(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(PostgresMetrics(registry=registry))
    await manager.start()
    manager.bus.emit(RetryScheduled(manager.name, 1, 0.01, "DeadlockDetectedError", "transfer"))
    # An emitter that broke the contract and put message text in `reason`.
    manager.bus.emit(RetryScheduled(manager.name, 1, 0.01, "could not serialize access", "x"))
    scraped = scrape()
    assert scraped.value("fkit_postgres_retries_total", reason="DeadlockDetectedError") == 1
    assert scraped.value("fkit_postgres_retries_total", reason="other") == 1
    assert "could not serialize" not in scraped.text


@pytest.mark.asyncio
async def test_lock_waits_are_observed_and_refusals_counted_by_scope(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    # fkit-locks emits these events; it is written concurrently, so this test emits
    # them on the manager's bus directly, exactly as the lock plugin will.
    manager = make_manager(PostgresMetrics(registry=registry, buckets=[0.1, 1.0, 10.0]))
    await manager.start()
    bus = manager.bus
    bus.emit(LockAcquired(manager.name, "orders:42", 0.05, "transaction", False))
    bus.emit(LockAcquired(manager.name, "orders:43", 2.5, "transaction", False))
    bus.emit(LockNotAcquired(manager.name, "orders:42", 0.5, "session", True))
    scraped = scrape()
    assert scraped.value("fkit_postgres_lock_wait_seconds_count", scope="transaction") == 2
    assert scraped.value("fkit_postgres_lock_wait_seconds_sum", scope="transaction") == 2.55
    assert (
        scraped.value("fkit_postgres_lock_wait_seconds_bucket", scope="transaction", le="1.0") == 1
    )
    assert scraped.value("fkit_postgres_lock_wait_seconds_count", scope="session") == 1
    assert scraped.value("fkit_postgres_locks_not_acquired_total", scope="session") == 1
    assert scraped.matching("fkit_postgres_locks_not_acquired_total", scope="transaction") == []
    # Lock keys are unbounded: they never become labels.
    assert "orders:42" not in scraped.text


@pytest.mark.asyncio
async def test_health_checks_set_health_up_and_observe_their_duration(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(PostgresMetrics(registry=registry))
    await manager.start()
    assert await manager.healthcheck()
    assert scrape().value("fkit_postgres_health_up", engine="primary") == 1
    assert not await manager.healthcheck(query="SELECT 1 / 0")
    scraped = scrape()
    assert scraped.value("fkit_postgres_health_up", engine="primary") == 0
    assert scraped.value("fkit_postgres_healthcheck_duration_seconds_count", engine="primary") == 2
