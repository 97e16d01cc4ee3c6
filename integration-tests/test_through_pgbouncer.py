"""The integration suite through a real pgbouncer in transaction pooling mode.

fkit-testing's ``fkit_pgbouncer_url`` is this worker's database behind a pgbouncer in
transaction mode; the manager connects with ``pgbouncer=True`` on asyncpg and psycopg,
with the locks, metrics and otel plugins set up, and each plugin's main path is run
through it: Unit of Work commits and rollbacks (also concurrently, more clients than
pgbouncer has server connections), transaction-scoped advisory locks, the refusal of
session-scoped ones, metrics and spans.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork
from fkit_core.settings import BasePostgresConfig, PoolSettings
from fkit_locks import (
    LocksPlugin,
    SessionLockUnsupportedError,
    advisory_lock,
    advisory_xact_lock,
    try_advisory_xact_lock,
)
from fkit_metrics import PostgresMetrics
from fkit_otel import OtelPlugin

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fkit_testing import PgBouncer


class Stack:
    """A manager through pgbouncer with the plugins, and what they record."""

    def __init__(
        self,
        manager: AsyncSessionManager,
        registry: CollectorRegistry,
        exporter: InMemorySpanExporter,
    ) -> None:
        self.manager = manager
        self.registry = registry
        self.exporter = exporter
        self.table = f"bouncer_{uuid.uuid4().hex[:10]}"

    def sample(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                wanted = labels.items() <= sample.labels.items()
                if sample.name == name and wanted:
                    total += sample.value
        return total

    def spans(self, name: str) -> list[Any]:
        return [s for s in self.exporter.get_finished_spans() if s.name == name]


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    return fkit_each_driver


@pytest_asyncio.fixture
async def stack(fkit_pgbouncer_url: str, driver: str) -> AsyncIterator[Stack]:
    url = make_url(fkit_pgbouncer_url).set(drivername=f"postgresql+{driver}")
    config = BasePostgresConfig(
        url=url.render_as_string(hide_password=False),
        pgbouncer=True,
        # More clients than the fixture's pgbouncer has server connections (its default
        # pool is 20 per database): transaction pooling multiplexes them.
        pool=PoolSettings(size=24, max_overflow=0),
    )
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins: list[Any] = [
        LocksPlugin(),
        PostgresMetrics(registry=registry),
        OtelPlugin(tracer_provider=provider),
    ]
    manager = AsyncSessionManager(config, plugins=plugins, autoload=False, name="bouncer")
    result = Stack(manager, registry, exporter)
    await manager.start()
    async with manager.get_transaction() as session:
        await session.execute(text(f"CREATE TABLE {result.table} (id int PRIMARY KEY, v text)"))
    yield result
    async with manager.get_transaction() as session:
        await session.execute(text(f"DROP TABLE {result.table}"))
    await manager.close()


@pytest.mark.asyncio
async def test_the_manager_really_goes_through_pgbouncer(
    stack: Stack, fkit_pgbouncer: PgBouncer
) -> None:
    assert stack.manager.engine.url.port == fkit_pgbouncer.port
    async with stack.manager.get_transaction() as session:
        # pgbouncer answers SHOW on its admin console only; the server port differs.
        server_port = await session.scalar(text("select inet_server_port()"))
    assert server_port != fkit_pgbouncer.port


@pytest.mark.asyncio
async def test_unit_of_work_commits_rolls_back_and_runs_concurrently(stack: Stack) -> None:
    uow = AsyncSQLAlchemyUnitOfWork(stack.manager)
    async with uow.transaction(isolation_level="serializable") as tx:
        await tx.session.execute(text(f"INSERT INTO {stack.table} VALUES (1, 'kept')"))
    with pytest.raises(RuntimeError, match="boom"):
        async with uow.transaction() as tx:
            await tx.session.execute(text(f"INSERT INTO {stack.table} VALUES (2, 'gone')"))
            raise RuntimeError("boom")

    async def write(n: int) -> None:
        async with uow.transaction() as tx:
            await tx.session.execute(
                text(f"INSERT INTO {stack.table} VALUES (:id, 'many')"), {"id": n}
            )
            await tx.session.execute(text("select pg_sleep(0.01)"))

    # 24 clients over at most 20 server connections, each transaction with parameters
    # (no prepared statements may leak across the server connections pgbouncer swaps).
    await asyncio.wait_for(asyncio.gather(*(write(n) for n in range(100, 124))), 120)
    async with uow.query() as qx:
        rows = (await qx.session.execute(text(f"SELECT id FROM {stack.table}"))).scalars()
        assert sorted(rows) == [1, *range(100, 124)]
    assert (
        stack.sample("fkit_postgres_transactions_total", outcome="commit", kind="transaction") >= 25
    )
    assert stack.sample("fkit_postgres_transactions_total", outcome="rollback") >= 1
    assert len(stack.spans("uow.transaction")) >= 26


@pytest.mark.asyncio
async def test_transaction_scoped_advisory_locks_work_through_pgbouncer(stack: Stack) -> None:
    key = f"bouncer:{uuid.uuid4().hex}"
    async with stack.manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, key) is True
        async with stack.manager.get_transaction() as other:
            assert await try_advisory_xact_lock(other, key) is False
    # Released with its transaction, whichever server connection pgbouncer gives next.
    async with (
        stack.manager.get_transaction() as session,
        advisory_xact_lock(session, key, timeout=5) as lock,
    ):
        assert lock.scope == "transaction"
    assert stack.sample("fkit_postgres_locks_not_acquired_total", scope="transaction") == 1
    waits = stack.spans("db.lock.wait")
    assert [s.attributes["fkit.lock.acquired"] for s in waits] == [True, False, True]


@pytest.mark.asyncio
async def test_session_scoped_advisory_locks_are_refused_with_a_pointer(stack: Stack) -> None:
    with pytest.raises(SessionLockUnsupportedError, match="pgbouncer=True") as caught:
        async with advisory_lock(stack.manager, "bouncer:session-lock"):
            pass
    assert "advisory_xact_lock" in str(caught.value)


@pytest.mark.asyncio
async def test_metrics_and_spans_record_through_pgbouncer(stack: Stack) -> None:
    async with AsyncSQLAlchemyUnitOfWork(stack.manager).transaction() as tx:
        await tx.session.execute(text(f"INSERT INTO {stack.table} VALUES (7, 'x')"))
    labels = {"manager": "bouncer", "engine": "primary"}
    # The fixture's CREATE TABLE and this one.
    assert stack.sample("fkit_postgres_transactions_total", outcome="commit", **labels) == 2
    assert stack.sample("fkit_postgres_pool_size", **labels) == 24
    assert await stack.manager.healthcheck()
    assert stack.sample("fkit_postgres_health_up", **labels) == 1
    inserts = [
        s
        for s in stack.exporter.get_finished_spans()
        if "INSERT INTO" in str(s.attributes.get("db.statement"))
    ]
    assert len(inserts) == 1
    # The statement span is a child of the transaction's span.
    (parent,) = [
        s
        for s in stack.spans("uow.transaction")
        if inserts[0].parent is not None and s.context.span_id == inserts[0].parent.span_id
    ]
    assert parent.status.is_ok
