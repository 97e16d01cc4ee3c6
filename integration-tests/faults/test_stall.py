"""Scenario 3: the network stalls (the proxy accepts, but no byte moves either way).

A stalled path swallows everything: queries, the server's answers, and cancel requests,
which travel through the same path. ``statement_timeout`` runs on the server, so it can
only fire for a statement the server received, and its error only arrives when the path
carries it again. What fkit guarantees under a stall, and what this proves:

- ``statement_timeout`` (``QuerySettings`` and per transaction) fires as configured when
  the server sees the statement: through a slow network, and for a statement held by a
  stall once the network moves again;
- ``PoolSettings(timeout=...)`` fires as configured: ``PoolTimeoutError`` when stalled
  work holds every connection;
- ``health_report(timeout=...)`` answers unhealthy within its timeout, connecting or not;
- a caller's own deadline (``asyncio.timeout``) ends a stalled transaction; fkit rolls it
  back and adds no wait of its own; the cancelled connection is given up by the driver:
  asyncpg (through SQLAlchemy) closes it with a 2 s timeout, psycopg sends a cancel
  request (5 s timeout) and waits 5 s more before closing it. The deadline surfaces as a
  plain ``TimeoutError`` (see the fkit-core fix this suite prompted);
- ``close(timeout)`` returns within ``timeout + max(timeout, 5 s)`` with work stuck in
  the stall: it cancels that work and disposes the engines; the load stops by itself.
  Cancelled work that had not sent COMMIT is absent. Work whose COMMIT the stall held
  is an unknown outcome the caller sees only as a cancellation: psycopg waits up to 5 s
  for an interrupted statement to end, so when the network moves again within that
  time, the held COMMIT can still commit (reported as ``cancelled_at_commit``);
- when the network moves again, held work completes and the pool is whole;
- nothing is lost or doubled by any of it.

Elapsed times are printed, never asserted: every wait is a hang guard with a generous
margin (``MARGIN``).

Not guarded by fkit: a *new* connection made through a stall. ``PoolSettings.timeout``
covers waiting for a pooled connection, not connecting; asyncpg gives up after its
default 60 s, psycopg never unless the URL sets ``connect_timeout``. The caller's deadline
and the health check's timeout are the guards (second test).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest
from fkit_faults_load import Tally, checked_out, run_load, until, verify, within
from fkit_faults_server import with_driver
from sqlalchemy import text

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, BasePostgresConfig
from fkit_core.errors import FkitError, PoolTimeoutError, StatementTimeoutError
from fkit_core.events import ManagerClosed
from fkit_core.settings import PoolSettings, QuerySettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from fkit_faults_proxy import FaultProxy

STATEMENT_TIMEOUT = 0.5
POOL_TIMEOUT = 0.5
HEALTH_TIMEOUT = 0.5
DEADLINE = 1.0
CLOSE_TIMEOUT = 0.5
# How long each driver may take to give up a connection whose peer went silent, once a
# cancellation reaches it (see the module docstring).
DRIVER_GIVE_UP = {"asyncpg": 2.0, "psycopg": 10.0}
MARGIN = 10.0


def _config(url: str, app_name: str, *, check_on_start: bool = True) -> BasePostgresConfig:
    return BasePostgresConfig(
        url=url,
        pool=PoolSettings(size=3, max_overflow=0, timeout=POOL_TIMEOUT),
        query=QuerySettings(statement_timeout=STATEMENT_TIMEOUT, application_name=app_name),
        check_on_start=check_on_start,
    )


async def _deadline(seconds: float, work: Awaitable[Any]) -> Any:
    async with asyncio.timeout(seconds):
        return await work


@pytest.mark.asyncio
async def test_stall_timeouts_fire_as_configured_and_nothing_hangs(
    proxy: FaultProxy,
    fkit_database_url: str,
    driver: str,
    app_name: str,
    admin: AsyncSessionManager,
    table: Callable[[str], Awaitable[str]],
) -> None:
    name = await table("tx_id text NOT NULL UNIQUE")
    url = with_driver(fkit_database_url, driver, port=proxy.port)
    loaded = AsyncSessionManager(_config(url, f"{app_name}-load"), plugins=[], autoload=False)
    probe = AsyncSessionManager(_config(url, f"{app_name}-probe"), plugins=[], autoload=False)
    await loaded.start()
    await probe.start()
    loaded_engine = loaded.engine
    closed: list[ManagerClosed] = []
    loaded.bus.subscribe(ManagerClosed, closed.append)
    elapsed: dict[str, float] = {}
    try:
        load_uow = AsyncSQLAlchemyUnitOfWork(loaded)
        probe_uow = AsyncSQLAlchemyUnitOfWork(probe)
        tally = Tally(f"stall ({driver})")
        insert = text(f"INSERT INTO {name} (tx_id) VALUES (:id)")

        async def one(tx_id: str) -> None:
            async with load_uow.transaction() as tx:
                await tx.session.execute(insert, {"id": tx_id})
                await tx.session.execute(text("SELECT pg_sleep(0.01)"))
                tally.committing.add(tx_id)

        def probe_tx(sql: str, statement_timeout: float | None = None) -> Coroutine[Any, Any, int]:
            async def run() -> int:
                async with probe_uow.transaction(statement_timeout=statement_timeout) as tx:
                    await tx.session.execute(text(sql))
                return 1

            return run()

        # Three pooled connections for the probe, so that the stall never needs a new one.
        await asyncio.gather(*(probe_tx("SELECT pg_sleep(0.05)") for _ in range(3)))
        load = asyncio.ensure_future(
            run_load(tally, one, workers=6, max_transactions=20_000, max_seconds=50)
        )
        await until(lambda: len(tally.committed) >= 20, "the load to get going")

        # 1. Through a slow network the server's statement_timeout fires as configured.
        proxy.delay(0.05)
        task, elapsed["statement_timeout"] = await within(
            STATEMENT_TIMEOUT + MARGIN, "statement_timeout", probe_tx("SELECT pg_sleep(30)")
        )
        assert isinstance(task.exception(), StatementTimeoutError)
        task, elapsed["statement_timeout_per_tx"] = await within(
            0.2 + MARGIN,
            "per-transaction statement_timeout",
            probe_tx("SELECT pg_sleep(30)", statement_timeout=0.2),
        )
        assert isinstance(task.exception(), StatementTimeoutError)
        proxy.delay(0)

        # 2. Stall: three probe transactions hold the probe's three connections, the load
        # holds the loaded manager's three.
        proxy.stall()
        held = asyncio.ensure_future(probe_tx("SELECT 1"))
        sleeper = asyncio.ensure_future(probe_tx("SELECT pg_sleep(30)"))
        bounded_started = time.perf_counter()
        bounded = asyncio.ensure_future(_deadline(DEADLINE, probe_tx("SELECT 1")))
        await until(lambda: checked_out(probe.engine) == 3, "three stalled transactions")
        await until(lambda: checked_out(loaded_engine) == 3, "the stalled load")

        task, elapsed["pool_timeout"] = await within(
            POOL_TIMEOUT + MARGIN, "pool timeout", probe_tx("SELECT 1")
        )
        assert isinstance(task.exception(), PoolTimeoutError)
        report, elapsed["health_check"] = await within(
            HEALTH_TIMEOUT + MARGIN, "health check", probe.health_report(timeout=HEALTH_TIMEOUT)
        )
        assert not report.result().healthy

        # 3. close() the loaded manager with its work stuck in the stall (meanwhile the
        # drivers give up on the probe's deadline-cancelled connection).
        closing, elapsed["close"] = await within(
            CLOSE_TIMEOUT + max(CLOSE_TIMEOUT, 5.0) + MARGIN,
            "close() during a stall",
            loaded.close(timeout=CLOSE_TIMEOUT),
        )
        assert closing.exception() is None

        # 4. The caller's deadline ended its transaction, within the driver's give-up time.
        await within(DEADLINE + DRIVER_GIVE_UP[driver] + MARGIN, "the caller's deadline", bounded)
        elapsed["caller_deadline"] = time.perf_counter() - bounded_started
        deadline_error = bounded.exception()
        assert isinstance(deadline_error, TimeoutError)
        assert not isinstance(deadline_error, FkitError)
        # statement_timeout cannot fire through a stall: the server never got these.
        assert not held.done()
        assert not sleeper.done()

        # 5. The network moves again: held work completes, the held pg_sleep times out on
        # the server, the probe's pool is whole again, the load has stopped by itself.
        proxy.resume()
        _, _ = await within(MARGIN, "held work after the stall", held)
        assert held.result() == 1
        _, _ = await within(STATEMENT_TIMEOUT + MARGIN, "held pg_sleep", sleeper)
        assert isinstance(sleeper.exception(), StatementTimeoutError)
        await until(lambda: checked_out(probe.engine) == 0, "probe connections back")
        healthy, _ = await within(HEALTH_TIMEOUT + MARGIN, "health", probe.healthcheck())
        assert healthy.result() is True
        again, _ = await within(MARGIN, "work after the stall", probe_tx("SELECT 1"))
        assert again.result() == 1
        await within(DRIVER_GIVE_UP[driver] + MARGIN, "the load to stop by itself", load)
        assert load.exception() is None

        timings = " ".join(f"{key}={value:.2f}s" for key, value in elapsed.items())
        figures = await verify(
            admin, name, tally, close_cancelled=closed[0].cancelled, elapsed=f"[{timings}]"
        )
        assert figures.lost == 0
        assert figures.duplicates == 0
        assert figures.phantoms == 0
        assert figures.cancelled_present == 0
        assert tally.foreign == [], f"failures that are not fkit errors: {tally.foreign!r}"
        assert tally.failures["PoolTimeoutError"] > 0  # the load met the pool timeout too
        assert tally.failures["ManagerClosedError"] > 0  # and was refused once closing
        assert closed[0].cancelled >= 3  # the three stalled transactions at least
        assert checked_out(loaded_engine) == 0
    finally:
        proxy.resume()
        await loaded.close()
        await probe.close()


@pytest.mark.asyncio
async def test_connecting_through_a_stall_is_bounded_by_the_health_check_and_the_caller(
    proxy: FaultProxy, fkit_database_url: str, driver: str, app_name: str
) -> None:
    url = with_driver(fkit_database_url, driver, port=proxy.port)
    config = _config(url, app_name, check_on_start=False)
    async with AsyncSessionManager(config, plugins=[], autoload=False) as manager:
        proxy.stall()
        report, health_elapsed = await within(
            HEALTH_TIMEOUT + MARGIN, "health check", manager.health_report(timeout=HEALTH_TIMEOUT)
        )
        assert not report.result().healthy

        async def transaction() -> None:
            async with manager.get_transaction() as session:
                await session.execute(text("SELECT 1"))

        # Connecting is not covered by the pool timeout; the caller's deadline ends it,
        # and cancelling a connect is immediate for both drivers.
        task, deadline_elapsed = await within(
            DEADLINE + MARGIN, "a deadline while connecting", _deadline(DEADLINE, transaction())
        )
        assert isinstance(task.exception(), TimeoutError)
        assert checked_out(manager.engine) == 0
        proxy.resume()
        ok, _ = await within(MARGIN, "work after the stall", transaction())
        assert ok.exception() is None
        assert await manager.healthcheck()
    print(
        f"[faults] connecting through a stall ({driver}): health check unhealthy after "
        f"{health_elapsed:.2f}s (timeout {HEALTH_TIMEOUT}s); caller's deadline ended the "
        f"connect after {deadline_elapsed:.2f}s (deadline {DEADLINE}s); work resumed after"
    )
