"""Pool gauges read at scrape time, checkout waits, hold times and pool timeouts."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from fkit_core import PoolSettings, PoolTimeoutError
from fkit_metrics import PostgresMetrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry
    from sqlalchemy.ext.asyncio import AsyncConnection

    from fkit_core import AsyncSessionManager

    from .conftest import Scrape

GAUGES = ("pool_size", "pool_checked_out", "pool_overflow", "pool_checked_in")


def pool(scraped: Scrape, **labels: str) -> tuple[float | None, ...]:
    return tuple(scraped.value(f"fkit_postgres_{g}", **labels) for g in GAUGES)


@pytest.mark.asyncio
async def test_pool_gauges_follow_checkouts_and_returns(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(
        PostgresMetrics(registry=registry), pool=PoolSettings(size=3, max_overflow=2)
    )
    await manager.start()  # its start-up check opened one connection and returned it
    assert pool(scrape(), engine="primary") == (3, 0, 0, 1)

    held: list[AsyncConnection] = []
    for _ in range(2):
        conn = await manager.engine.connect()
        await conn.execute(text("SELECT 1"))
        held.append(conn)
    assert pool(scrape(), engine="primary") == (3, 2, 0, 0)

    for _ in range(2):  # beyond pool_size: one overflow connection
        conn = await manager.engine.connect()
        await conn.execute(text("SELECT 1"))
        held.append(conn)
    assert pool(scrape(), engine="primary") == (3, 4, 1, 0)

    for conn in held:
        await conn.close()
    # The pool keeps pool_size connections and closes the overflow one.
    assert pool(scrape(), engine="primary") == (3, 0, 0, 3)
    scraped = scrape()
    # Five checkouts in all (the start-up check and four here), each waited for and held.
    assert scraped.value("fkit_postgres_checkout_duration_seconds_count") == 5
    assert scraped.value("fkit_postgres_connection_held_seconds_count") == 5
    assert scraped.value("fkit_postgres_timeouts_total") == 0


@pytest.mark.asyncio
async def test_a_full_pool_counts_a_timeout_where_sqlalchemy_raises_it(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(
        PostgresMetrics(registry=registry),
        pool=PoolSettings(size=2, max_overflow=0, timeout=0.2),
    )
    await manager.start()
    both_hold = asyncio.Barrier(3)
    release = asyncio.Event()

    async def holder() -> None:
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1"))
            await both_hold.wait()
            await release.wait()

    holders = [asyncio.create_task(holder()) for _ in range(2)]
    try:
        async with asyncio.timeout(30):  # hang guard only
            await both_hold.wait()
            assert pool(scrape(), engine="primary") == (2, 2, 0, 0)
            with pytest.raises(PoolTimeoutError):
                async with manager.get_transaction() as session:
                    await session.execute(text("SELECT 1"))
    finally:
        release.set()
        await asyncio.gather(*holders)
    scraped = scrape()
    assert scraped.value("fkit_postgres_timeouts_total", engine="primary") == 1
    # The timed-out wait is observed too: it is time spent waiting for the pool.
    assert scraped.value("fkit_postgres_checkout_duration_seconds_count") == 4
    assert (
        scraped.value("fkit_postgres_errors_total", sqlstate_class="none", error="PoolTimeoutError")
        == 1
    )
    assert scraped.value("fkit_postgres_transactions_total", outcome="error") == 1
    assert scraped.value("fkit_postgres_transactions_total", outcome="commit") == 2


@pytest.mark.asyncio
async def test_checkout_wait_is_observed_at_checkout_and_hold_time_at_return(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(
        PostgresMetrics(registry=registry),
        pool=PoolSettings(size=1, max_overflow=0, timeout=30),
    )
    await manager.start()
    wait_count = "fkit_postgres_checkout_duration_seconds_count"
    held_count = "fkit_postgres_connection_held_seconds_count"
    first = await manager.engine.connect()
    await first.execute(text("SELECT 1"))
    scraped = scrape()
    # The start-up check's checkout came back; the first one is out and not yet held-timed.
    assert (scraped.value(wait_count), scraped.value(held_count)) == (2, 1)

    waiter = asyncio.create_task(manager.engine.connect().start())
    await asyncio.sleep(0.3)
    # The pool's only connection is taken: the waiter is still inside the pool checkout.
    assert not waiter.done()
    assert scrape().value(wait_count) == 2
    await first.close()
    second = await asyncio.wait_for(waiter, 30)  # hang guard only
    scraped = scrape()
    assert (scraped.value(wait_count), scraped.value(held_count)) == (3, 2)
    # The waiter waited at least the 0.3 s the only connection stayed checked out.
    wait_sum = scraped.value("fkit_postgres_checkout_duration_seconds_sum")
    assert wait_sum is not None
    assert wait_sum >= 0.3
    await second.close()
    assert scrape().value(held_count) == 3


@pytest.mark.asyncio
async def test_checkout_timing_survives_engine_dispose(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(PostgresMetrics(registry=registry))
    await manager.start()
    # dispose() replaces the pool through pool.recreate(); a forked worker does this too.
    await manager.engine.dispose()
    async with manager.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        assert pool(scrape(), engine="primary") == (5, 1, 0, 0)
    scraped = scrape()
    assert scraped.value("fkit_postgres_checkout_duration_seconds_count") == 2
    assert scraped.value("fkit_postgres_connection_held_seconds_count") == 2


@pytest.mark.asyncio
async def test_pool_series_of_a_closed_manager_disappear(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    metrics = PostgresMetrics(registry=registry)
    staying = make_manager(metrics, name="staying")
    leaving = make_manager(metrics, name="leaving")
    await staying.start()
    await leaving.start()
    await leaving.healthcheck()
    scraped = scrape()
    assert scraped.value("fkit_postgres_pool_size", manager="leaving") == 5
    assert scraped.value("fkit_postgres_health_up", manager="leaving") == 1
    await leaving.close()
    scraped = scrape()
    assert scraped.matching("fkit_postgres_pool_size", manager="leaving") == []
    assert scraped.matching("fkit_postgres_health_up", manager="leaving") == []
    assert scraped.value("fkit_postgres_pool_size", manager="staying") == 5
    # Counters are monotonic: what the closed manager did stays counted.
    assert scraped.value("fkit_postgres_checkout_duration_seconds_count", manager="leaving") == 2


@pytest.mark.asyncio
async def test_a_null_pool_has_no_pool_gauges_but_still_times_checkouts(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    manager = make_manager(PostgresMetrics(registry=registry), pool=PoolSettings(null_pool=True))
    async with manager:
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1"))
        scraped = scrape()
    assert scraped.matching("fkit_postgres_pool_size") == []
    assert scraped.value("fkit_postgres_checkout_duration_seconds_count") == 2
    assert scraped.value("fkit_postgres_transactions_total", outcome="commit") == 1


@pytest.mark.asyncio
async def test_pools_of_two_managers_with_the_same_name_add_up(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    metrics = PostgresMetrics(registry=registry)
    await make_manager(metrics, pool=PoolSettings(size=2)).start()
    await make_manager(metrics, pool=PoolSettings(size=3)).start()
    sizes = scrape().matching("fkit_postgres_pool_size")
    # One valid series, not two with identical labels (which Prometheus would reject).
    assert [(s.labels["manager"], s.value) for s in sizes] == [("default", 5)]
