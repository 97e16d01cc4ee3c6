"""Scenario 4: ``close(timeout)`` while 16 workers are writing.

Every logical transaction writes two rows (parts 1 and 2) in one transaction, with a
pause between them. Some are short, a few are "drainers" (in flight when close begins,
shorter than its timeout) and a few are "stragglers" (longer than the timeout). Proven:

- close refuses new work at once (``ManagerClosedError``); the load stops by itself;
- in-flight work drains: every drainer commits;
- the cut work is rolled back: every straggler is cancelled (``ManagerClosed.cancelled``
  counts them) and none of its rows is present, and no backend of the app is left on
  the server;
- nothing is half-committed: every transaction id has 0 or 2 rows, never 1; every
  reported commit has both; nothing lost or doubled; the engines are disposed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from fkit_faults_load import Tally, checked_out, count_rows, run_load, until, verify, within
from sqlalchemy import text

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, BasePostgresConfig
from fkit_core.events import ManagerClosed, ManagerClosing
from fkit_core.settings import PoolSettings, QuerySettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

WORKERS = 16
DRAINERS = 4
STRAGGLERS = 3
CLOSE_TIMEOUT = 1.5
DRAINER_PAUSE = 0.1  # well inside CLOSE_TIMEOUT
STRAGGLER_PAUSE = 60.0  # far beyond it
MARGIN = 10.0


@pytest.mark.asyncio
async def test_close_during_load_drains_cuts_and_never_half_commits(
    db_url: str,
    driver: str,
    app_name: str,
    admin: AsyncSessionManager,
    table: Callable[[str], Awaitable[str]],
) -> None:
    name = await table("tx_id text NOT NULL, part int NOT NULL, UNIQUE (tx_id, part)")
    config = BasePostgresConfig(
        url=db_url,
        pool=PoolSettings(size=WORKERS + DRAINERS + STRAGGLERS, max_overflow=0),
        query=QuerySettings(application_name=app_name),
    )
    manager = AsyncSessionManager(config, plugins=[], autoload=False, name="closing")
    await manager.start()
    engine = manager.engine
    events: list[ManagerClosing | ManagerClosed] = []
    manager.bus.subscribe(ManagerClosing, events.append)
    manager.bus.subscribe(ManagerClosed, events.append)
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    insert = text(f"INSERT INTO {name} (tx_id, part) VALUES (:id, :part)")

    def writer(
        tally: Tally, pause: float, started: asyncio.Event | None = None
    ) -> Callable[[str], Awaitable[None]]:
        async def one(tx_id: str) -> None:
            async with uow.transaction() as tx:
                await tx.session.execute(insert, {"id": tx_id, "part": 1})
                if started is not None:
                    started.set()
                await tx.session.execute(text("SELECT pg_sleep(:s)"), {"s": pause})
                await tx.session.execute(insert, {"id": tx_id, "part": 2})
                tally.committing.add(tx_id)

        return one

    load = Tally(f"close under load ({driver})")
    drainers = Tally(f"close under load, drainers ({driver})")
    stragglers = Tally(f"close under load, stragglers ({driver})")
    try:
        running = asyncio.ensure_future(
            run_load(
                load, writer(load, 0.005), workers=WORKERS, max_transactions=20_000, max_seconds=30
            )
        )
        await until(lambda: len(load.committed) >= 4 * WORKERS, "the load to get going")
        stragglers_started = [asyncio.Event() for _ in range(STRAGGLERS)]
        straggling = [
            asyncio.ensure_future(
                run_load(
                    stragglers,
                    writer(stragglers, STRAGGLER_PAUSE, started),
                    workers=1,
                    max_transactions=STRAGGLERS,
                    max_seconds=30,
                )
            )
            for started in stragglers_started
        ]
        drainers_started = [asyncio.Event() for _ in range(DRAINERS)]
        draining = [
            asyncio.ensure_future(
                run_load(
                    drainers,
                    writer(drainers, DRAINER_PAUSE, started),
                    workers=1,
                    max_transactions=DRAINERS,
                    max_seconds=30,
                )
            )
            for started in drainers_started
        ]
        await until(
            lambda: all(e.is_set() for e in [*stragglers_started, *drainers_started]),
            "drainers and stragglers in flight",
        )

        task, close_elapsed = await within(
            CLOSE_TIMEOUT + max(CLOSE_TIMEOUT, 5.0) + MARGIN,
            "close() under load",
            manager.close(timeout=CLOSE_TIMEOUT),
        )
        assert task.exception() is None
        await within(
            MARGIN, "the load to stop by itself", asyncio.gather(running, *straggling, *draining)
        )

        closing, closed = events
        assert isinstance(closing, ManagerClosing)
        assert isinstance(closed, ManagerClosed)
        present = await count_rows(admin, name)
        figures = [
            await verify(admin, name, tally, rows_per_tx=2, in_flight_at_close=closing.in_flight)
            for tally in (load, drainers, stragglers)
        ]
        print(
            f"[faults] close under load ({driver}): close({CLOSE_TIMEOUT}) returned after "
            f"{close_elapsed:.2f}s; in flight at close {closing.in_flight}, cancelled "
            f"{closed.cancelled}; rows per id {sorted(set(present.values()))}"
        )
        assert set(present.values()) <= {2}, "a transaction id with one row: half-committed"
        for tally, figure in zip((load, drainers, stragglers), figures, strict=True):
            assert figure.lost == 0
            assert figure.duplicates == 0
            assert figure.phantoms == 0
            assert figure.cancelled_present == 0
            assert tally.foreign == [], f"failures that are not fkit errors: {tally.foreign!r}"
        assert len(drainers.committed) == DRAINERS  # in-flight work drained
        assert len(stragglers.cancelled) == STRAGGLERS  # the cut work...
        assert not (stragglers.cancelled & present.keys())  # ...was rolled back
        assert closed.cancelled == STRAGGLERS
        assert load.failures["ManagerClosedError"] > 0  # refused once closing
        assert checked_out(engine) == 0

        async def app_backends() -> int:
            async with admin.get_transaction() as session:
                found = await session.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"),
                    {"app": app_name},
                )
                return int(found.scalar_one())

        left = await app_backends()
        for _ in range(int(MARGIN / 0.05)):
            if left == 0:
                break
            await asyncio.sleep(0.05)
            left = await app_backends()
        assert left == 0, "backends of the closed manager are still on the server"
    finally:
        await manager.close()
