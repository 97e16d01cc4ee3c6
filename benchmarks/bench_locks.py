"""fkit-locks benchmarks, side by side with the same SQL through a plain session.

    uv run python benchmarks/bench_locks.py [--url URL] [--driver asyncpg]
        [--seconds 0.5] [--rounds 12]

Measures, and prints as tables:
- the bookkeeping ``try_advisory_xact_lock`` does besides its one statement (key
  resolution, the transaction check, finding the manager, choosing the statement, the
  event checks), in microseconds per call without I/O: the part of the ratio below
  that is not noise;
- lock-then-commit transactions per second: each transaction takes a free
  transaction-scoped advisory lock and commits. "plain" sends
  ``SELECT pg_try_advisory_xact_lock(CAST(:k0 AS bigint))`` with ``session.execute``;
  "fkit" calls ``try_advisory_xact_lock(session, key)`` on sessions of the same
  sessionmaker (so only the lock call differs); "fkit, str key" digests a string key;
  "fkit, subscribed" has LockAcquired and LockReleased subscribers, so release tracking
  runs too. Concurrency 1 and 16, each worker on its own key (no contention). The
  paths run in short slices, interleaved round after round, and each ratio is the
  median over rounds of that round's path / plain: on a busy machine, drift then hits
  both sides of every ratio alike.
- wait-to-acquire under 16-way contention for one key: 16 workers loop over
  transaction -> ``advisory_xact_lock`` -> ``SELECT 1`` -> commit (and the session-scoped
  ``advisory_lock`` the same way); the wait of every acquisition is taken from the
  ``LockAcquired`` events; median, p95 and acquisitions per second.

The database is --url, else FKIT_TEST_DATABASE_URL, else a throwaway server from
fkit-testing's launcher. Numbers are for reading, not asserting: these are shared
2-core machines.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from typing import TYPE_CHECKING, Any

from benchlib import database, run_for
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fkit_core import AsyncSessionManager, BasePostgresConfig, PoolSettings
from fkit_core.events import LockAcquired, LockReleased
from fkit_locks import advisory_lock, advisory_xact_lock, try_advisory_xact_lock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TRY = text("SELECT pg_try_advisory_xact_lock(CAST(:k0 AS bigint))")
SELECT_1 = text("SELECT 1")


def bench_bookkeeping(n: int = 200_000) -> dict[str, float]:
    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core.events import LockNotAcquired
    from fkit_core.extending import owner_of
    from fkit_locks._keys import resolve_key
    from fkit_locks._sql import advisory_sql, key_params

    session = AsyncSession()

    def one(key: object) -> None:
        resolved = resolve_key(key)
        session.in_transaction()
        owner = owner_of(session)
        advisory_sql(resolved, session_scope=False, mode="try", shared=False)
        key_params(resolved)
        owner.bus.wants(LockAcquired)
        owner.bus.wants(LockNotAcquired)
        owner.bus.wants(LockReleased)

    results = {}
    for label, key in (("int key (us)", 123456789), ("str key (us)", "job:123456789")):
        start = time.perf_counter()
        for _ in range(n):
            one(key)
        results[label] = (time.perf_counter() - start) / n * 1e6
    return results


def _manager(url: str, name: str) -> AsyncSessionManager:
    config = BasePostgresConfig(url=url, pool=PoolSettings(size=20, max_overflow=0))
    return AsyncSessionManager(config, plugins=[], autoload=False, name=name)


async def bench_throughput(url: str, seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    quiet = _manager(url, "quiet")
    subscribed = _manager(url, "subscribed")
    await quiet.start()
    await subscribed.start()
    seen: list[object] = []
    subscribed.bus.subscribe(LockAcquired, seen.append)
    subscribed.bus.subscribe(LockReleased, seen.append)
    maker, sub_maker = quiet.session_maker, subscribed.session_maker
    base = secrets.randbits(40)
    str_keys = [f"bench:{base}:{i}" for i in range(64)]

    async def plain(i: int) -> None:
        async with maker() as session, session.begin():
            assert (await session.execute(TRY, {"k0": base + i})).scalar()

    async def fkit(i: int) -> None:
        async with maker() as session, session.begin():
            assert await try_advisory_xact_lock(session, base + i)

    async def fkit_str(i: int) -> None:
        async with maker() as session, session.begin():
            assert await try_advisory_xact_lock(session, str_keys[i])

    async def fkit_subscribed(i: int) -> None:
        async with sub_maker() as session, session.begin():
            assert await try_advisory_xact_lock(session, base + i)
        seen.clear()

    paths: dict[str, Callable[[int], Awaitable[Any]]] = {
        "plain": plain,
        "fkit": fkit,
        "fkit, str key": fkit_str,
        "fkit, subscribed": fkit_subscribed,
    }
    results: dict[str, dict[str, float]] = {}
    try:
        for concurrency in (1, 16):
            for path in paths.values():  # warm pools, statement caches, listeners
                await run_for(0.5, concurrency, path)
            samples: dict[str, list[float]] = {name: [] for name in paths}
            names = list(paths)
            for round_ in range(rounds):
                # Rotate the order too, so no path always runs right after another.
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    samples[name].append(await run_for(seconds, concurrency, paths[name]))
            row = {"plain tx/s": statistics.median(samples["plain"])}
            for name in list(paths)[1:]:
                paired = [a / b for a, b in zip(samples[name], samples["plain"], strict=True)]
                row[f"{name} x"] = statistics.median(paired)
            results[f"concurrency {concurrency}"] = row
    finally:
        await quiet.close()
        await subscribed.close()
    return results


async def bench_contention(
    url: str, seconds: float, workers: int = 16
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for scope in ("transaction", "session"):
        manager = _manager(url, f"contention-{scope}")
        await manager.start()
        waits: list[float] = []

        def record(event: LockAcquired, waits: list[float] = waits) -> None:
            waits.append(event.wait_seconds)

        manager.bus.subscribe(LockAcquired, record)
        key = secrets.randbits(40)

        async def xact(_: int, manager: AsyncSessionManager = manager, key: int = key) -> None:
            async with manager.get_transaction() as session, advisory_xact_lock(session, key):
                await session.execute(SELECT_1)

        async def session_scope(
            _: int, manager: AsyncSessionManager = manager, key: int = key
        ) -> None:
            async with advisory_lock(manager, key) as lock:
                assert lock.connection is not None
                await lock.connection.execute(SELECT_1)

        one = xact if scope == "transaction" else session_scope
        try:
            await run_for(0.5, workers, one)
            waits.clear()
            rate = await run_for(seconds, workers, one)
        finally:
            await manager.close()
        ordered = sorted(waits)
        results[f"{scope} scope"] = {
            "acquired/s": rate,
            "median wait ms": statistics.median(ordered) * 1000,
            "p95 wait ms": ordered[int(len(ordered) * 0.95)] * 1000,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url")
    parser.add_argument("--driver", choices=["asyncpg", "psycopg"], default="asyncpg")
    parser.add_argument("--seconds", type=float, default=0.5, help="per slice")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    print("== bookkeeping per try_advisory_xact_lock call, no I/O")
    for name, value in bench_bookkeeping().items():
        print(f"  {name:15} {value:8.2f}")
    with database(args.url) as raw:
        url = (
            make_url(raw)
            .set(drivername=f"postgresql+{args.driver}")
            .render_as_string(hide_password=False)
        )
        print(f"== lock-then-commit, one free key per worker ({args.driver})")
        for label, row in asyncio.run(bench_throughput(url, args.seconds, args.rounds)).items():
            cells = "  ".join(f"{k} {v:8.2f}" for k, v in row.items())
            print(f"  {label:15} {cells}")
        print(f"== 16 workers contending for one key ({args.driver})")
        contention = asyncio.run(bench_contention(url, max(3.0, args.seconds)))
        for label, row in contention.items():
            cells = "  ".join(f"{k} {v:8.2f}" for k, v in row.items())
            print(f"  {label:18} {cells}")


if __name__ == "__main__":
    main()
