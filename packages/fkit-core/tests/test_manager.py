"""Session manager life cycle: start, lazy start, failing start, close with drain."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fkit_core import (
    AsyncSessionManager,
    ManagerClosedError,
    SessionManager,
    create_async_session_manager,
)
from fkit_core.errors import DatabaseError
from fkit_core.events import EngineCreated, Event, ManagerClosed, ManagerClosing, ManagerStarted


@pytest.mark.asyncio
async def test_async_with_starts_and_closes(db_url: str) -> None:
    seen: list[Event] = []
    manager = SessionManager(db_url, plugins=[], autoload=False, name="orders")
    manager.bus.subscribe_all(seen.append)
    async with manager as started:
        assert started is manager
        assert manager.state == "started"
        assert manager.session_maker.kw["expire_on_commit"] is False
        async with manager.get_session() as session:
            assert (await session.execute(text("SELECT 1"))).scalar() == 1
    assert manager.state == "closed"
    kinds = [type(e) for e in seen]
    assert kinds == [EngineCreated, ManagerStarted, ManagerClosing, ManagerClosed]
    assert all(e.manager == "orders" for e in seen)
    created = seen[0]
    assert isinstance(created, EngineCreated)
    assert (created.engine_name, created.role) == ("primary", "primary")


@pytest.mark.asyncio
async def test_initialize_and_dispose_are_aliases(db_url: str) -> None:
    manager = AsyncSessionManager(db_url, plugins=[], autoload=False)
    await manager.initialize()
    await manager.initialize()  # idempotent
    assert manager.state == "started"
    await manager.dispose()
    await manager.dispose()  # idempotent
    assert manager.state == "closed"


@pytest.mark.asyncio
async def test_the_factory_builds_a_manager_that_starts_on_first_use(db_url: str) -> None:
    manager = create_async_session_manager(db_url, autoload=False)
    assert manager.state == "new"
    async with manager.get_transaction() as session:
        assert (await session.execute(text("SELECT 2"))).scalar() == 2
    assert manager.state == "started"
    await manager.close()


@pytest.mark.asyncio
async def test_a_failing_start_leaves_no_connection_open(
    db_url: str, fkit_database_url: str
) -> None:
    app = f"fkit-failstart-{uuid.uuid4().hex[:8]}"
    bad = (
        make_url(db_url)
        .set(database=f"missing_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )
    from fkit_core import BasePostgresConfig, QuerySettings

    manager = AsyncSessionManager(
        BasePostgresConfig(url=bad, query=QuerySettings(application_name=app)),
        plugins=[],
        autoload=False,
    )
    with pytest.raises(DatabaseError, match="does not exist"):
        await manager.start()
    assert manager.state == "new"
    async with (
        AsyncSessionManager(db_url, plugins=[], autoload=False) as probe,
        probe.get_session() as s,
    ):
        count = (
            await s.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :a"),
                {"a": app},
            )
        ).scalar()
    assert count == 0


@pytest.mark.asyncio
async def test_close_refuses_new_work_drains_in_flight_and_cancels_the_rest(db_url: str) -> None:
    manager = AsyncSessionManager(db_url, plugins=[], autoload=False)
    await manager.start()
    table = f"drain_{uuid.uuid4().hex[:8]}"
    async with manager.get_transaction() as session:
        await session.execute(text(f"CREATE TABLE {table} (id int)"))
    seen: list[Event] = []
    manager.bus.subscribe_all(seen.append)
    begun = asyncio.Semaphore(0)
    release_quick = asyncio.Event()

    async def quick(i: int) -> None:
        async with manager.get_transaction() as session:
            await session.execute(text(f"INSERT INTO {table} VALUES ({i})"))
            begun.release()
            await release_quick.wait()

    async def slow() -> None:
        async with manager.get_transaction() as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (99)"))
            begun.release()
            await asyncio.sleep(3600)

    tasks = [
        asyncio.create_task(quick(1)),
        asyncio.create_task(quick(2)),
        asyncio.create_task(slow()),
    ]
    for _ in tasks:
        await begun.acquire()
    closing = asyncio.create_task(manager.close(timeout=1.0))
    await asyncio.sleep(0)  # close() has begun: the manager refuses new work at once
    assert manager.state == "closing"
    with pytest.raises(ManagerClosedError, match="refuses new sessions"):
        manager.get_transaction()
    with pytest.raises(ManagerClosedError):
        manager.get_session()
    release_quick.set()
    await closing
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[:2] == [None, None]
    assert isinstance(results[2], asyncio.CancelledError)
    closed = [e for e in seen if isinstance(e, ManagerClosed)]
    assert closed == [ManagerClosed("default", 1)]
    closing_events = [e for e in seen if isinstance(e, ManagerClosing)]
    assert closing_events[0].in_flight == 3
    # The committed work is there, the cut work left nothing behind.
    async with AsyncSessionManager(db_url, plugins=[], autoload=False) as other:
        async with other.get_session() as s:
            ids = sorted((await s.execute(text(f"SELECT id FROM {table}"))).scalars())
        async with other.get_transaction() as s:
            await s.execute(text(f"DROP TABLE {table}"))
    assert ids == [1, 2]


@pytest.mark.asyncio
async def test_nothing_reopens_the_pool_after_close(db_url: str) -> None:
    manager = AsyncSessionManager(db_url, plugins=[], autoload=False)
    await manager.start()
    engine = manager.engine
    maker = manager.session_maker
    await manager.close()
    with pytest.raises(ManagerClosedError):
        _ = manager.engine
    with pytest.raises(ManagerClosedError):
        await manager.start()
    with pytest.raises(ManagerClosedError, match="accept no new connections"):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    with pytest.raises(ManagerClosedError):
        async with maker() as session:
            await session.execute(text("SELECT 1"))
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_close_waits_for_plain_sessions_too(db_url: str) -> None:
    manager = AsyncSessionManager(db_url, plugins=[], autoload=False)
    await manager.start()
    order: list[str] = []

    async def reader() -> None:
        async with manager.get_session() as session:
            await session.execute(text("SELECT pg_sleep(0.2)"))
            order.append("reader done")

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.05)
    await manager.close(timeout=30)
    order.append("closed")
    await task
    assert order == ["reader done", "closed"]


@pytest.mark.asyncio
async def test_secrets_stay_out_of_repr_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-pa:ss@/%w"
    from urllib.parse import quote

    url = f"postgresql+asyncpg://someone:{quote(secret, safe='')}@127.0.0.1:1/db"
    manager = AsyncSessionManager(url, plugins=[], autoload=False)
    with caplog.at_level(logging.DEBUG):
        assert secret not in repr(manager)
        with pytest.raises(DatabaseError) as info:
            await manager.start()
        report = await manager.health_report(timeout=5)
    assert not report.healthy
    assert secret not in str(report)
    assert secret not in str(info.value)
    assert secret not in caplog.text
    assert quote(secret, safe="") not in caplog.text
    await manager.close()


@pytest.mark.asyncio
async def test_close_from_inside_a_transaction_does_not_wait_for_itself(db_url: str) -> None:
    manager = AsyncSessionManager(db_url, plugins=[], autoload=False)
    await manager.start()
    async with manager.get_transaction() as session:
        await session.execute(text("SELECT 1"))
        # The guard (same task, unlike wait_for) is far below close()'s own timeout:
        # waiting on itself would hang here.
        async with asyncio.timeout(10):
            await manager.close(timeout=60)
        assert manager.state == "closed"
