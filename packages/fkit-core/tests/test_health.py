"""Health checks: a bool and a report, bounded by their timeout, never leaking a connection."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from sqlalchemy import text

from fkit_core import AsyncSessionManager, BasePostgresConfig, PoolSettings
from fkit_core.events import Event, HealthChecked

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.mark.asyncio
async def test_healthy_server(manager: AsyncSessionManager, events: list[Event]) -> None:
    assert await manager.healthcheck() is True
    report = await manager.health_report(query="SELECT count(*) FROM pg_class")
    assert report.healthy
    assert report.error is None
    assert report.latency > 0
    checked = [e for e in events if isinstance(e, HealthChecked)]
    assert [c.healthy for c in checked] == [True, True]
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_failing_query_is_unhealthy_with_the_error(manager: AsyncSessionManager) -> None:
    report = await manager.health_report(query="SELECT * FROM no_such_table_for_health")
    assert not report.healthy
    assert report.error is not None
    assert "no_such_table_for_health" in report.error
    assert await manager.healthcheck(query="SELECT * FROM no_such_table_for_health") is False
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_slow_query_is_cut_at_the_timeout_without_leaking(
    manager: AsyncSessionManager,
) -> None:
    # The outer guard is far above the check's timeout and far below the query's length:
    # it only fails the test if the check hangs.
    # A unique marker: other tests (and other processes) may share this server.
    query = f"SELECT pg_sleep(30) -- {uuid.uuid4().hex}"
    report = await asyncio.wait_for(manager.health_report(query=query, timeout=0.5), 15)
    assert not report.healthy
    assert report.error is not None
    for _ in range(100):
        if manager.engine.pool.checkedout() == 0:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    # The server gave up on the query as well: no backend is still sleeping for us.
    async with manager.get_session() as session:
        for _ in range(100):
            sleeping = (
                await session.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE query = :q AND state = 'active'"
                    ),
                    {"q": query},
                )
            ).scalar()
            if sleeping == 0:
                break
            await asyncio.sleep(0.05)
    assert sleeping == 0
    assert await manager.healthcheck() is True


@pytest_asyncio.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers: a hung database."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.asyncio
async def test_a_server_that_hangs_makes_the_check_return_at_its_timeout(
    silent_server: int, driver: str
) -> None:
    config = BasePostgresConfig(
        url=f"postgresql+{driver}://postgres@127.0.0.1:{silent_server}/postgres",
        pool=PoolSettings(timeout=60),
        check_on_start=False,
    )
    async with AsyncSessionManager(config, plugins=[], autoload=False) as manager:
        report = await asyncio.wait_for(manager.health_report(timeout=0.5), 15)
        assert not report.healthy
        assert report.error is not None
        assert "TimeoutError" in report.error
        assert await asyncio.wait_for(manager.healthcheck(timeout=0.3), 15) is False
        for _ in range(100):
            if manager.engine.pool.checkedout() == 0:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_connect_timeout_bounds_opening_a_connection_to_a_hung_server(
    silent_server: int, driver: str
) -> None:
    from fkit_core.errors import ConnectionLostError

    config = BasePostgresConfig(
        url=f"postgresql+{driver}://postgres@127.0.0.1:{silent_server}/postgres",
        pool=PoolSettings(connect_timeout=0.5),
        check_on_start=False,
    )
    async with AsyncSessionManager(config, plugins=[], autoload=False) as manager:
        # The guard is far above the connect timeout (psycopg rounds up to 2 s) and far
        # below the drivers' own defaults (60 s, or forever).
        with pytest.raises((TimeoutError, ConnectionLostError)):
            async with asyncio.timeout(20), manager.get_transaction() as session:
                await session.execute(text("SELECT 1"))
        assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_connect_timeout_reaches_each_driver() -> None:
    for driver, key, value in (("asyncpg", "timeout", 0.5), ("psycopg", "connect_timeout", 2)):
        config = BasePostgresConfig(
            url=f"postgresql+{driver}://u@h/db", pool=PoolSettings(connect_timeout=0.5)
        )
        assert config.engine_kwargs()["connect_args"][key] == value
