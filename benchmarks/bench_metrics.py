"""fkit-metrics overhead: transactions per second with the plugin against without, side by side.

    uv run python benchmarks/bench_metrics.py [--url URL] [--seconds 2] [--rounds 9]

Two session managers on the same server and the same pool settings, one with no plugin
and one with ``PostgresMetrics`` (its own registry, scraped once per round so the pool
collector runs too). Each transaction is one INSERT ... RETURNING and a COMMIT through
``manager.get_transaction()``. Rounds alternate between the two at concurrency 1 and 16,
so drift on the machine hits both alike; the table shows the medians and their ratio
(target: at least 0.95).

Because whole transactions on a shared machine are noisy, it also times exactly what the
plugin adds to each transaction, without the database: delivering ``TransactionEnded``
to its subscriber (against a bus nobody listens to), and one pool checkout and return
through the timed pool class with the hold listeners (against SQLAlchemy's plain
``QueuePool``), over connections that do nothing.

The database is --url, else FKIT_TEST_DATABASE_URL, else a throwaway server from
fkit-testing's launcher. Numbers are for reading, not asserting: these are shared
2-core machines.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import TYPE_CHECKING, Any

from benchlib import database, per_call_us, run_for
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from fkit_core import AsyncSessionManager, BasePostgresConfig, PoolSettings
from fkit_core.events import TransactionEnded
from fkit_metrics import DEFAULT_BUCKETS, PostgresMetrics
from fkit_metrics._pool import hold_timers, timed_pool_class

if TYPE_CHECKING:
    from collections.abc import Callable

INSERT = text("INSERT INTO bench_metric_rows (note) VALUES ('x') RETURNING id")


class _IdleConnection:
    """A DBAPI connection that does nothing, so only the pool's own work is timed."""

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


def bench_hooks(n: int = 100_000) -> dict[str, float]:
    registry = CollectorRegistry()
    metrics = PostgresMetrics(registry=registry)
    quiet = AsyncSessionManager("postgresql+asyncpg://bench@localhost/bench", name="quiet")
    wired = AsyncSessionManager("postgresql+asyncpg://bench@localhost/bench", name="wired")
    metrics.setup(wired)  # subscribes to the bus; the manager is never started

    def emitter(manager: AsyncSessionManager) -> Callable[[], None]:
        bus = manager.bus

        def emit() -> None:  # what fkit-core does at the end of every transaction
            if bus.wants(TransactionEnded):
                bus.emit(
                    TransactionEnded(
                        manager.name,
                        "primary",
                        "transaction",
                        None,
                        False,
                        False,
                        "commit",
                        0.001,
                        None,
                    )
                )

        return emit

    emit_quiet, emit_wired = emitter(quiet), emitter(wired)

    plain_pool = QueuePool(_IdleConnection, pool_size=1, max_overflow=0)
    timed = timed_pool_class(QueuePool, _histogram(registry, "wait").observe, lambda: None, None)
    timed_pool = timed(_IdleConnection, pool_size=1, max_overflow=0)
    on_checkout, on_checkin = hold_timers(_histogram(registry, "held").observe)
    event.listen(timed_pool, "checkout", on_checkout)
    event.listen(timed_pool, "checkin", on_checkin)

    quiet_us = per_call_us(emit_quiet, n)
    wired_us = per_call_us(emit_wired, n)
    plain_us = per_call_us(lambda: plain_pool.connect().close(), n)
    timed_us = per_call_us(lambda: timed_pool.connect().close(), n)
    return {
        "TransactionEnded, nobody listening (us)": quiet_us,
        "TransactionEnded, to the metrics (us)": wired_us,
        "checkout + return, plain QueuePool (us)": plain_us,
        "checkout + return, timed + hold listeners (us)": timed_us,
        "added per transaction (us)": (wired_us - quiet_us) + (timed_us - plain_us),
    }


def _histogram(registry: CollectorRegistry, name: str) -> Any:
    # Labelled and bucketed like the plugin's own histograms.
    return Histogram(
        f"bench_{name}", name, ["engine"], registry=registry, buckets=DEFAULT_BUCKETS
    ).labels("primary")


async def _run_for(seconds: float, concurrency: int, manager: AsyncSessionManager) -> float:
    async def one(_worker: int) -> None:
        async with manager.get_transaction() as session:
            (await session.execute(INSERT)).scalar_one()

    return await run_for(seconds, concurrency, one)


async def bench(url: str, seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    engine_url = make_url(url).set(drivername="postgresql+asyncpg")
    config = BasePostgresConfig(
        url=engine_url.render_as_string(hide_password=False),
        pool=PoolSettings(size=16, max_overflow=0),
    )
    registry = CollectorRegistry()
    plain = AsyncSessionManager(config, plugins=[], autoload=False, name="plain")
    measured = AsyncSessionManager(
        config, plugins=[PostgresMetrics(registry=registry)], autoload=False, name="metrics"
    )
    await plain.start()
    await measured.start()
    async with plain.get_transaction() as session:
        await session.execute(text("DROP TABLE IF EXISTS bench_metric_rows"))
        await session.execute(
            text("CREATE UNLOGGED TABLE bench_metric_rows (id bigserial PRIMARY KEY, note text)")
        )
    results: dict[str, dict[str, float]] = {}
    try:
        for concurrency in (1, 16):
            await _run_for(1.0, concurrency, plain)  # warm both pools and caches
            await _run_for(1.0, concurrency, measured)
            samples: dict[str, list[float]] = {"plain": [], "metrics": []}
            for index in range(rounds):
                # Alternate which goes first, so neither always runs on a warmer server.
                order = [("plain", plain), ("metrics", measured)]
                for label, manager in order if index % 2 == 0 else reversed(order):
                    samples[label].append(await _run_for(seconds, concurrency, manager))
                generate_latest(registry)  # a scrape per round, as Prometheus would
            p, m = statistics.median(samples["plain"]), statistics.median(samples["metrics"])
            results[f"concurrency {concurrency}"] = {
                "without tx/s": p,
                "with metrics tx/s": m,
                "ratio": m / p,
            }
    finally:
        async with plain.get_transaction() as session:
            await session.execute(text("DROP TABLE IF EXISTS bench_metric_rows"))
        await plain.close()
        await measured.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print("== what the plugin adds per transaction, without the database")
    for name, value in bench_hooks().items():
        print(f"  {name:48} {value:8.2f}")
    with database(args.url) as url:
        print("== transactions: one INSERT ... RETURNING + COMMIT each (asyncpg)")
        for label, row in asyncio.run(bench(url, args.seconds, args.rounds)).items():
            cells = "  ".join(f"{k} {v:8.2f}" for k, v in row.items())
            print(f"  {label:15} {cells}")


if __name__ == "__main__":
    main()
