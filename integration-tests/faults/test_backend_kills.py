"""Scenario 1: every backend of the app is killed, again and again, during 16-way load.

Two ways to kill: ``pg_terminate_backend`` on the app's ``application_name`` (the server
says why: 57P01, then closes), and the fault proxy cutting every connection (no word,
just a reset). Both hit connections wherever they are: idle in the pool, inside a
transaction, in the middle of COMMIT. Half the logical
transactions go through ``uow.run`` (which retries transient errors), half through a
bare ``uow.transaction()``. Proven: what reported success is present, exactly once; what
reported a plain failure is absent; ``CommitOutcomeUnknownError`` is reported apart
(present or not); every failure is an fkit error; the pool recovers (a final round all
commits, nothing stays checked out).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from fkit_faults_load import Tally, checked_out, count_rows, run_load, until, verify
from fkit_faults_server import with_driver
from sqlalchemy import text

from fkit_core import (
    AsyncSessionManager,
    AsyncSQLAlchemyUnitOfWork,
    AsyncSQLAlchemyUowTransaction,
    BasePostgresConfig,
    RetryConfig,
)
from fkit_core.settings import PoolSettings, QuerySettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fkit_faults_proxy import FaultProxy

WORKERS = 16
KILL_ROUNDS = 12
KILL_INTERVAL = 0.1
HANG_GUARD = 60.0


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["pg_terminate_backend", "network cut"])
async def test_killed_connections_lose_and_duplicate_nothing(
    fault: str,
    db_url: str,
    app_name: str,
    driver: str,
    admin: AsyncSessionManager,
    proxy: FaultProxy,
    table: Callable[[str], Awaitable[str]],
) -> None:
    name = await table("tx_id text NOT NULL UNIQUE, pid int NOT NULL")
    cut = fault == "network cut"
    config = BasePostgresConfig(
        url=with_driver(db_url, driver, port=proxy.port) if cut else db_url,
        pool=PoolSettings(size=8, max_overflow=8, timeout=10),
        query=QuerySettings(application_name=app_name),
    )
    manager = AsyncSessionManager(config, plugins=[], autoload=False, name="kills")
    await manager.start()
    try:
        uow = AsyncSQLAlchemyUnitOfWork(
            manager, retry=RetryConfig(max_attempts=4, initial_delay=0.005, max_delay=0.05)
        )
        tally = Tally(f"{fault} ({driver})")
        unwatch = tally.watch_retries(manager)
        insert = text(f"INSERT INTO {name} (tx_id, pid) VALUES (:id, pg_backend_pid())")
        pause = text("SELECT pg_sleep(0.002)")

        def work(tx_id: str) -> Callable[[AsyncSQLAlchemyUowTransaction], Awaitable[None]]:
            async def write(tx: AsyncSQLAlchemyUowTransaction) -> None:
                await tx.session.execute(insert, {"id": tx_id})
                # Keeps transactions open a little, so kills land inside them too.
                await tx.session.execute(pause)

            return write

        async def one(tx_id: str) -> None:
            if int(tx_id[-1], 16) % 2:
                await uow.run(work(tx_id))
            else:
                async with uow.transaction() as tx:
                    await work(tx_id)(tx)

        stop = asyncio.Event()
        kills = {"rounds": 0, "killed": 0}

        async def killer() -> None:
            try:
                await until(lambda: len(tally.committed) >= 2 * WORKERS, "the load to start")
                kill = text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :app"
                )
                for _ in range(KILL_ROUNDS):
                    if cut:
                        killed = proxy.cut()
                    else:
                        async with admin.get_transaction() as session:
                            killed = (await session.execute(kill, {"app": app_name})).scalar_one()
                    kills["rounds"] += 1
                    kills["killed"] += int(killed)
                    await asyncio.sleep(KILL_INTERVAL)
            finally:
                stop.set()

        async with asyncio.timeout(HANG_GUARD):
            await asyncio.gather(
                killer(),
                run_load(
                    tally, one, workers=WORKERS, max_transactions=20_000, max_seconds=20, stop=stop
                ),
            )

            # The pool recovers: a final 16-way round all commits. Through uow.run: without
            # pre-ping, a connection killed by the last round while idle in the pool fails
            # its next transaction once (then SQLAlchemy invalidates the whole pool).
            unwatch()
            final = Tally(f"{fault}, final round ({driver})")
            final.watch_retries(manager)

            async def again(tx_id: str) -> None:
                await uow.run(work(tx_id))

            await run_load(final, again, workers=WORKERS, max_transactions=64, max_seconds=20)
            healthy = await manager.healthcheck(timeout=5)

        figures = await verify(admin, name, tally, **kills, final_round_retries=final.retries)
        assert kills["killed"] >= KILL_ROUNDS  # every round found backends to kill
        assert figures.lost == 0
        assert figures.duplicates == 0
        assert figures.phantoms == 0
        assert tally.foreign == [], f"failures that are not fkit errors: {tally.foreign!r}"
        assert sum(tally.failures.values()) + tally.retries > 0  # the kills were felt
        assert final.failures == {}, f"the pool did not recover: {dict(final.failures)}"
        assert len(final.committed) == 64
        assert final.committed <= (await count_rows(admin, name)).keys()
        assert healthy
        assert checked_out(manager.engine) == 0
    finally:
        await manager.close()
