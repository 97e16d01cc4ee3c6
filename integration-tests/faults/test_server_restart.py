"""Scenario 2: the server restarts (fast shutdown, then start on the same port).

Always on a throwaway server of this module's own: the shared server must never restart.
Two managers run side by side, one with ``PoolSettings(pre_ping=True)``, one without.

Proven:

- under load, ``healthcheck()`` is False while the server is down and True once it is
  back; nothing that reported success is lost or doubled; failures are fkit errors; no
  pool is stuck: a final round commits and nothing stays checked out, with or without
  pre-ping;
- what pre-ping is for: after a restart that nobody noticed (the pool idle), the first
  transaction of a pool *without* pre-ping fails with ``ConnectionLostError`` on a dead
  pooled connection (only the first: SQLAlchemy then invalidates the whole pool), so it
  needs a retry (``uow.run`` or ``retry_async_connection``); *with* pre-ping, the dead
  connections are replaced at checkout and the first transaction succeeds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import pytest
import pytest_asyncio
from fkit_faults_load import Tally, checked_out, run_load, until, verify
from fkit_faults_server import Restarter, with_driver
from sqlalchemy import text

from fkit_core import (
    AsyncSessionManager,
    AsyncSQLAlchemyUnitOfWork,
    AsyncSQLAlchemyUowTransaction,
    BasePostgresConfig,
    RetryConfig,
)
from fkit_core.errors import ConnectionLostError
from fkit_core.settings import PoolSettings, QuerySettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from sqlalchemy.pool import QueuePool

WORKERS = 6
HANG_GUARD = 60.0
RETRY = RetryConfig(max_attempts=8, initial_delay=0.02, max_delay=0.25)


@pytest.fixture(scope="module")
def restartable() -> Iterator[Restarter]:
    """A throwaway server of this module's own, which the tests restart."""
    from fkit_testing import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield Restarter(server)
    finally:
        server.stop()


@pytest_asyncio.fixture
async def restart_admin(restartable: Restarter, driver: str) -> AsyncIterator[AsyncSessionManager]:
    """Verifies data on the restarted server; a fresh connection each time, so no dead pool."""
    config = BasePostgresConfig(
        url=with_driver(restartable.server.url, driver),
        pool=PoolSettings(null_pool=True),
        query=QuerySettings(application_name="fkit-faults-admin"),
    )
    manager = AsyncSessionManager(config, plugins=[], autoload=False, name="admin")
    await manager.start()
    yield manager
    await manager.close()


async def _table(admin: AsyncSessionManager, name: str) -> None:
    async with admin.get_transaction() as session:
        await session.execute(text(f"DROP TABLE IF EXISTS {name}"))
        await session.execute(text(f"CREATE TABLE {name} (tx_id text NOT NULL UNIQUE)"))


def _manager(url: str, app_name: str, *, pre_ping: bool) -> AsyncSessionManager:
    config = BasePostgresConfig(
        url=url,
        pool=PoolSettings(size=8, max_overflow=4, timeout=10, pre_ping=pre_ping),
        query=QuerySettings(application_name=app_name),
    )
    name = "pinged" if pre_ping else "plain"
    return AsyncSessionManager(config, plugins=[], autoload=False, name=name)


def _writer(
    table: str,
) -> Callable[[str], Callable[[AsyncSQLAlchemyUowTransaction], Awaitable[None]]]:
    insert = text(f"INSERT INTO {table} (tx_id) VALUES (:id)")

    def work(tx_id: str) -> Callable[[AsyncSQLAlchemyUowTransaction], Awaitable[None]]:
        async def write(tx: AsyncSQLAlchemyUowTransaction) -> None:
            await tx.session.execute(insert, {"id": tx_id})

        return write

    return work


@pytest.mark.asyncio
async def test_restart_under_load_health_goes_false_then_true_and_nothing_is_stuck(
    restartable: Restarter, restart_admin: AsyncSessionManager, driver: str, app_name: str
) -> None:
    url = with_driver(restartable.server.url, driver)
    table = f"fx_restart_{app_name[-12:]}"
    await _table(restart_admin, table)
    work = _writer(table)
    managers = [_manager(url, f"{app_name}-{pre}", pre_ping=pre) for pre in (False, True)]
    for manager in managers:
        await manager.start()
    try:
        uows = [AsyncSQLAlchemyUnitOfWork(m, retry=RETRY) for m in managers]
        tallies = [Tally(f"server restart, {m.name} pool ({driver})") for m in managers]
        for manager, tally in zip(managers, tallies, strict=True):
            tally.watch_retries(manager)
        health: list[list[bool]] = [[], []]
        stop = asyncio.Event()

        async def watch(manager: AsyncSessionManager, seen: list[bool]) -> None:
            while not stop.is_set():
                healthy = await manager.healthcheck(timeout=1)
                if not seen or seen[-1] != healthy:
                    seen.append(healthy)
                await asyncio.sleep(0.05)

        def load(i: int) -> Awaitable[None]:
            async def one(tx_id: str) -> None:
                await uows[i].run(work(tx_id))

            return run_load(
                tallies[i], one, workers=WORKERS, max_transactions=5_000, max_seconds=30, stop=stop
            )

        down_checks: list[bool] = []

        async def restart() -> None:
            try:
                await until(lambda: all(len(t.committed) >= 20 for t in tallies), "load")
                await restartable.stop()
                # The server is down: every manager's health check says so.
                down_checks.extend([await m.healthcheck(timeout=2) for m in managers])
                await until(lambda: all(False in h for h in health), "watchers to see it")
                await asyncio.sleep(0.2)  # the load meets the outage
                await restartable.start()
                await until(lambda: all(h[-1:] == [True] for h in health), "health back")
                after = [len(t.committed) for t in tallies]
                await until(
                    lambda: all(
                        len(t.committed) >= a + 20 for t, a in zip(tallies, after, strict=True)
                    ),
                    "work after the restart",
                )
            finally:
                stop.set()

        async with asyncio.timeout(HANG_GUARD):
            await asyncio.gather(
                restart(),
                load(0),
                load(1),
                *(watch(m, h) for m, h in zip(managers, health, strict=True)),
            )

            finals = []
            for manager, uow in zip(managers, uows, strict=True):
                final = Tally(f"server restart, {manager.name} pool, final round ({driver})")

                async def again(
                    tx_id: str,
                    uow: AsyncSQLAlchemyUnitOfWork[AsyncSQLAlchemyUowTransaction] = uow,
                ) -> None:
                    await uow.run(work(tx_id))

                await run_load(final, again, workers=8, max_transactions=32, max_seconds=20)
                finals.append(final)

        for i, (manager, tally) in enumerate(zip(managers, tallies, strict=True)):
            figures = await verify(restart_admin, table, tally, health=health[i])
            assert figures.lost == 0
            assert figures.duplicates == 0
            assert figures.phantoms == 0
            assert tally.foreign == [], f"failures that are not fkit errors: {tally.foreign!r}"
            assert health[i][0] is True
            assert False in health[i]
            assert health[i][-1] is True
            assert finals[i].failures == {}, f"{manager.name} pool stuck: {finals[i].failures}"
            assert len(finals[i].committed) == 32
            assert checked_out(manager.engine) == 0
        assert down_checks == [False, False]
    finally:
        for manager in managers:
            await manager.close()


@pytest.mark.asyncio
async def test_after_an_unnoticed_restart_only_pre_ping_spares_the_first_transaction(
    restartable: Restarter, restart_admin: AsyncSessionManager, driver: str, app_name: str
) -> None:
    url = with_driver(restartable.server.url, driver)
    managers = [_manager(url, f"{app_name}-{pre}", pre_ping=pre) for pre in (False, True)]
    for manager in managers:
        await manager.start()
    try:
        plain, pinged = managers
        for manager in managers:
            # Four idle connections in each pool, then nobody uses them during the restart.
            async def touch(manager: AsyncSessionManager = manager) -> None:
                async with manager.get_transaction() as session:
                    await session.execute(text("SELECT pg_sleep(0.05)"))

            await asyncio.gather(*(touch() for _ in range(4)))
            assert cast("QueuePool", manager.engine.pool).checkedin() == 4
        await restartable.stop()
        await restartable.start()

        async def one(manager: AsyncSessionManager) -> int:
            async with manager.get_transaction() as session:
                return int((await session.execute(text("SELECT 1"))).scalar_one())

        async with asyncio.timeout(HANG_GUARD):
            with pytest.raises(ConnectionLostError) as lost:
                await one(plain)
            # One failure invalidated the whole pool: every later checkout reconnects.
            plain_after = [await one(plain) for _ in range(4)]
            pinged_results = [await one(pinged) for _ in range(5)]
        print(
            f"[faults] unnoticed restart ({driver}): without pre_ping the first transaction "
            f"failed with {type(lost.value).__name__} and the next 4 committed; "
            f"with pre_ping all {len(pinged_results)} committed"
        )
        assert lost.value.__cause__ is not None
        assert plain_after == [1, 1, 1, 1]
        assert pinged_results == [1] * 5
    finally:
        for manager in managers:
            await manager.close()
