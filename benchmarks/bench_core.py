"""fkit-core benchmarks, side by side with plain SQLAlchemy in one run.

    uv run python benchmarks/bench_core.py [--url URL] [--seconds 3] [--rounds 3]

Measures, and prints as a table:
- emitting an event nobody listens to, and one with one subscriber (ns per emit);
- plugin discovery in this environment (ms), and `import fkit_core` against
  `import sqlalchemy.ext.asyncio` in fresh interpreters (ms, and the ratio);
- transactions per second, one INSERT ... RETURNING and a commit each, for plain
  `async with session.begin()`, `manager.get_transaction()`, `uow.transaction()` and
  `uow.run()` with retry enabled but not triggered, at concurrency 1 and 16, interleaved
  in rounds on the same server so drift hits all alike.

The database is --url, else FKIT_TEST_DATABASE_URL, else a throwaway server from
fkit-testing's launcher. Numbers are for reading, not asserting: these are shared
2-core machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from benchlib import database, run_for
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from fkit_core import (
    AsyncSessionManager,
    AsyncSQLAlchemyUnitOfWork,
    AsyncSQLAlchemyUowTransaction,
    BasePostgresConfig,
    EventBus,
    PoolSettings,
)
from fkit_core.events import HealthChecked, ManagerClosed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

INSERT = text("INSERT INTO bench_rows (note) VALUES ('x') RETURNING id")


def bench_emit(n: int = 1_000_000) -> dict[str, float]:
    bus = EventBus()
    event = ManagerClosed("bench", 0)

    def guarded() -> float:
        start = time.perf_counter_ns()
        for _ in range(n):
            if bus.wants(HealthChecked):
                bus.emit(HealthChecked("bench", "primary", True, 0.0, None))
        return (time.perf_counter_ns() - start) / n

    def emit_one() -> float:
        start = time.perf_counter_ns()
        for _ in range(n):
            bus.emit(event)
        return (time.perf_counter_ns() - start) / n

    nobody = min(guarded() for _ in range(3))
    unguarded = min(emit_one() for _ in range(3))
    seen: list[object] = []
    bus.subscribe(ManagerClosed, seen.append)
    one = min(emit_one() for _ in range(3))
    return {
        "no listener, wants() check": nobody,
        "no listener, emit()": unguarded,
        "one subscriber": one,
    }


def _import_ms(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout) * 1000


def bench_imports(rounds: int = 9) -> dict[str, float]:
    # Measure what an installed wheel costs: with PYTHONDONTWRITEBYTECODE set, a source
    # edited since the last `uv sync` would otherwise be recompiled on every import.
    import compileall

    import fkit_core

    compileall.compile_dir(os.path.dirname(fkit_core.__file__), quiet=1)
    sa, fk = [], []
    for _ in range(rounds):
        sa.append(_import_ms("sqlalchemy.ext.asyncio"))
        fk.append(_import_ms("fkit_core"))
    code = (
        "import time; t = time.perf_counter(); from fkit_core import discover_plugins; "
        "import warnings; warnings.simplefilter('ignore'); s = time.perf_counter(); "
        "discover_plugins(); "
        "print(time.perf_counter() - s)"
    )
    disc = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        * 1000
        for _ in range(5)
    ]
    sa_ms, fk_ms = statistics.median(sa), statistics.median(fk)
    return {
        "import sqlalchemy.ext.asyncio (ms)": sa_ms,
        "import fkit_core (ms)": fk_ms,
        "fkit_core / sqlalchemy (ratio)": fk_ms / sa_ms,
        "plugin discovery (ms)": statistics.median(disc),
    }


async def bench_transactions(url: str, seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    pool = PoolSettings(size=16, max_overflow=0)
    engine_url = make_url(url).set(drivername="postgresql+asyncpg")
    plain_engine = create_async_engine(engine_url, pool_size=16, max_overflow=0)
    plain_maker = async_sessionmaker(plain_engine, expire_on_commit=False, class_=AsyncSession)
    manager = AsyncSessionManager(
        BasePostgresConfig(url=engine_url.render_as_string(hide_password=False), pool=pool),
        plugins=[],
        autoload=False,
    )
    await manager.start()
    async with plain_engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS bench_rows"))
        await conn.execute(
            text("CREATE UNLOGGED TABLE bench_rows (id bigserial PRIMARY KEY, note text)")
        )

    uow = AsyncSQLAlchemyUnitOfWork(manager)

    async def plain(_worker: int) -> None:
        async with plain_maker() as session, session.begin():
            (await session.execute(INSERT)).scalar_one()

    async def get_transaction(_worker: int) -> None:
        async with manager.get_transaction() as session:
            (await session.execute(INSERT)).scalar_one()

    async def uow_transaction(_worker: int) -> None:
        async with uow.transaction() as tx:
            (await tx.session.execute(INSERT)).scalar_one()

    async def insert(tx: AsyncSQLAlchemyUowTransaction) -> int:
        return int((await tx.session.execute(INSERT)).scalar_one())

    async def uow_run(_worker: int) -> None:
        await uow.run(insert)

    paths: dict[str, Callable[[int], Awaitable[Any]]] = {
        "plain": plain,
        "get_transaction": get_transaction,
        "uow.transaction": uow_transaction,
        "uow.run": uow_run,
    }
    results: dict[str, dict[str, float]] = {}
    try:
        for concurrency in (1, 16):
            for path in paths.values():  # warm pools and caches
                await run_for(0.5, concurrency, path)
            samples: dict[str, list[float]] = {name: [] for name in paths}
            order = list(paths)
            for round_ in range(rounds):
                # Rotate the order so no path always runs first (or last) in a round.
                for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                    samples[name].append(await run_for(seconds, concurrency, paths[name]))
            row = {"plain tx/s": statistics.median(samples["plain"])}
            for name in order[1:]:
                # Ratios paired within each round cancel the drift between rounds.
                paired = [f / p for f, p in zip(samples[name], samples["plain"], strict=True)]
                row[f"{name} x"] = statistics.median(paired)
            results[f"concurrency {concurrency}"] = row
    finally:
        async with plain_engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS bench_rows"))
        await plain_engine.dispose()
        await manager.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("== event bus (ns per emit)")
    for name, value in bench_emit().items():
        print(f"  {name:32} {value:8.1f}")
    print("== imports and discovery")
    for name, value in bench_imports().items():
        print(f"  {name:36} {value:8.2f}")
    print(f"== load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with database(args.url) as url:
        print("== transactions: one INSERT ... RETURNING + COMMIT each (asyncpg)")
        for label, row in asyncio.run(bench_transactions(url, args.seconds, args.rounds)).items():
            cells = "  ".join(f"{k} {v:8.2f}" for k, v in row.items())
            print(f"  {label:15} {cells}")


if __name__ == "__main__":
    main()
