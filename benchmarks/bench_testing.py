"""fkit-testing: the per-test cost of isolating tests, three ways side by side.

    uv run python benchmarks/bench_testing.py [--url URL] [--tests 40] [--rounds 3] [--tables 12]

Each simulated test runs the same body (three rows into two related tables, committed
through ``manager.get_transaction()``, then read back) and is isolated from the next:

- rollback: what ``fkit_manager`` does by default: a connection with an open transaction,
  the manager's sessions bound to it (``configure_sessions(bind=...,
  join_transaction_mode="create_savepoint")``), rolled back after the test;
- truncate: the body commits for real, then ``TRUNCATE`` of every table
  (``@pytest.mark.fkit_truncate``);
- recreate schema: the body commits, then ``metadata.drop_all`` + ``create_all``;
- recreate database: the body commits, then the database is dropped and cloned again
  from its template (what a fresh per-worker database costs).

One manager serves all tests of a strategy, so the numbers are the isolation's own cost
plus the body. The last line adds what the whole ``fkit_manager`` fixture costs per test
(a new manager, connected, isolated, closed), rollback mode. Strategies are interleaved in
rounds on the same server so drift hits all alike; the table shows the median round.

The server is --url, else FKIT_TEST_DATABASE_URL, else a throwaway one from fkit-testing's
launcher; the benchmark works in scratch databases of its own and drops them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from fkit_core import AsyncSessionManager, BasePostgresConfig
from fkit_testing._dbadmin import truncate_tables
from fkit_testing._isolation import Isolation

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def build_metadata(tables: int) -> tuple[MetaData, Table, Table]:
    """``tables`` tables in a chain of foreign keys, each with an index, like a small app."""
    metadata = MetaData()
    previous: Table | None = None
    made: list[Table] = []
    for n in range(tables):
        columns = [
            Column("id", Integer, primary_key=True),
            Column("name", String(100), nullable=False, index=True),
            Column("note", String(200)),
        ]
        if previous is not None:
            columns.append(Column("parent_id", Integer, ForeignKey(previous.c.id), index=True))
        previous = Table(f"bench_t{n}", metadata, *columns)
        made.append(previous)
    return metadata, made[0], made[1]


async def body(manager: AsyncSessionManager, parent: Table, child: Table) -> None:
    async with manager.get_transaction() as session:
        parent_id = await session.scalar(
            parent.insert().values(name="parent").returning(parent.c.id)
        )
        await session.execute(
            child.insert(), [{"name": f"child {i}", "parent_id": parent_id} for i in range(2)]
        )
    async with manager.get_transaction() as session:
        assert await session.scalar(select(func.count()).select_from(child)) == 2


async def admin(server: str, sql: str) -> None:
    engine = create_async_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


class Bench:
    def __init__(self, server: str, tables: int) -> None:
        self.server = server
        self.metadata, self.parent, self.child = build_metadata(tables)
        tag = uuid.uuid4().hex[:8]
        self.template = f"fkit_bench_{tag}_tpl"
        self.database = f"fkit_bench_{tag}"

    def url(self, database: str) -> str:
        return make_url(self.server).set(database=database).render_as_string(hide_password=False)

    async def setup(self) -> None:
        await admin(self.server, f'CREATE DATABASE "{self.template}"')
        engine = create_async_engine(self.url(self.template), poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(self.metadata.create_all)
        finally:
            await engine.dispose()
        await admin(self.server, f'CREATE DATABASE "{self.database}" TEMPLATE "{self.template}"')

    async def teardown(self) -> None:
        for name in (self.database, self.template):
            await admin(self.server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def manager(self) -> AsyncSessionManager:
        return AsyncSessionManager(
            BasePostgresConfig(url=self.url(self.database)), plugins=[], autoload=False
        )

    async def rollback(self, tests: int) -> float:
        manager = self.manager()
        await manager.start()
        try:
            start = time.perf_counter()
            for _ in range(tests):
                isolation = Isolation(manager, "rollback")
                await isolation.begin()
                await body(manager, self.parent, self.child)
                await isolation._rollback()
            return (time.perf_counter() - start) / tests
        finally:
            await manager.close()

    async def truncate(self, tests: int) -> float:
        manager = self.manager()
        await manager.start()
        try:
            start = time.perf_counter()
            for _ in range(tests):
                await body(manager, self.parent, self.child)
                async with manager.engine.begin() as conn:
                    await truncate_tables(conn)
            return (time.perf_counter() - start) / tests
        finally:
            await manager.close()

    async def recreate_schema(self, tests: int) -> float:
        manager = self.manager()
        await manager.start()
        try:
            start = time.perf_counter()
            for _ in range(tests):
                await body(manager, self.parent, self.child)
                async with manager.engine.begin() as conn:
                    await conn.run_sync(self.metadata.drop_all)
                    await conn.run_sync(self.metadata.create_all)
            return (time.perf_counter() - start) / tests
        finally:
            await manager.close()

    async def recreate_database(self, tests: int) -> float:
        start = time.perf_counter()
        for _ in range(tests):
            manager = self.manager()
            await manager.start()
            await body(manager, self.parent, self.child)
            await manager.close()
            await admin(self.server, f'DROP DATABASE "{self.database}" WITH (FORCE)')
            await admin(
                self.server, f'CREATE DATABASE "{self.database}" TEMPLATE "{self.template}"'
            )
        return (time.perf_counter() - start) / tests

    async def fixture(self, tests: int) -> float:
        start = time.perf_counter()
        for _ in range(tests):
            manager = self.manager()
            await manager.start()
            isolation = Isolation(manager, "rollback")
            await isolation.begin()
            await body(manager, self.parent, self.child)
            await isolation.finish(10.0)
        return (time.perf_counter() - start) / tests


async def run(server: str, tests: int, rounds: int, tables: int) -> None:
    bench = Bench(server, tables)
    await bench.setup()
    strategies: dict[str, Callable[[int], Awaitable[float]]] = {
        "rollback (default)": bench.rollback,
        "truncate (fkit_truncate)": bench.truncate,
        "recreate schema (drop_all + create_all)": bench.recreate_schema,
        "recreate database (from template)": bench.recreate_database,
        "whole fkit_manager fixture, rollback": bench.fixture,
    }
    results: dict[str, list[float]] = {name: [] for name in strategies}
    try:
        for strategy in strategies.values():
            await strategy(3)  # warm-up: connections, statement caches, imports
        for _ in range(rounds):
            for name, strategy in strategies.items():
                results[name].append(await strategy(tests))
    finally:
        await bench.teardown()
    base = statistics.median(results["rollback (default)"])
    print(f"\nper-test cost, {tables} tables, {tests} tests x {rounds} rounds (median round)")
    print(f"{'isolation':42} {'ms/test':>9} {'x rollback':>11}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:42} {median * 1000:9.2f} {median / base:11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("FKIT_TEST_DATABASE_URL"))
    parser.add_argument("--tests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tables", type=int, default=12)
    parser.add_argument("--driver", default="asyncpg", choices=["asyncpg", "psycopg"])
    args = parser.parse_args()
    if args.url:
        server = make_url(args.url).set(drivername=f"postgresql+{args.driver}")
        print(f"server: {server.render_as_string(hide_password=True)}")
        asyncio.run(
            run(server.render_as_string(hide_password=False), args.tests, args.rounds, args.tables)
        )
        return
    from fkit_testing import launch_postgres

    with launch_postgres() as pg:
        print(f"server: throwaway PostgreSQL {pg.version} at {pg.url}")
        server = make_url(pg.url).set(drivername=f"postgresql+{args.driver}")
        asyncio.run(
            run(server.render_as_string(hide_password=False), args.tests, args.rounds, args.tables)
        )


if __name__ == "__main__":
    main()
