"""The integration suite on a streaming replica: read routing and fallback, plugins on.

fkit-testing's ``fkit_replica_pair`` is a throwaway primary and its hot standby;
``fkit_replica_pair_database`` is this worker's database on it. A manager with the
locks, metrics and otel plugins writes on the primary, reads from the replica once it
has replayed, and falls back to the primary when its replica is down; the metrics and
spans name the engine that served each read.
"""

from __future__ import annotations

import socket
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
from fkit_core.errors import ReadOnlyTransactionError
from fkit_core.events import ReplicaFallback
from fkit_core.settings import BasePostgresConfig
from fkit_locks import LocksPlugin, try_advisory_xact_lock
from fkit_metrics import PostgresMetrics
from fkit_otel import OtelPlugin

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from fkit_testing import ReplicaPair, WorkerDatabase


class Observed:
    """A manager with the plugins, and what its metrics and spans recorded."""

    def __init__(self, manager: AsyncSessionManager, registry: CollectorRegistry) -> None:
        self.manager = manager
        self.registry = registry
        self.exporter = InMemorySpanExporter()
        self.fallbacks: list[ReplicaFallback] = []
        manager.bus.subscribe(ReplicaFallback, self.fallbacks.append)

    def sample(self, name: str, **labels: str) -> float:
        total = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def spans(self, name: str) -> list[Any]:
        return [s for s in self.exporter.get_finished_spans() if s.name == name]


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    return fkit_each_driver


@pytest.fixture
def dead_url() -> str:
    """A port nothing listens on: a replica that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest_asyncio.fixture
async def observed(
    fkit_replica_pair: ReplicaPair, fkit_replica_pair_database: WorkerDatabase, driver: str
) -> AsyncIterator[Callable[[str], Any]]:
    """Builds started managers on the pair's primary with the given replica URL."""
    started: list[AsyncSessionManager] = []

    def with_driver(url: str) -> str:
        return make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(False)

    async def build(replica_url: str) -> Observed:
        config = BasePostgresConfig(
            url=with_driver(fkit_replica_pair_database.url),
            replica_urls=[with_driver(replica_url)],
        )
        registry = CollectorRegistry()
        provider = TracerProvider()
        plugins: list[Any] = [LocksPlugin(), PostgresMetrics(registry=registry)]
        manager = AsyncSessionManager(
            config,
            plugins=[*plugins, OtelPlugin(tracer_provider=provider)],
            autoload=False,
            name="replicated",
        )
        result = Observed(manager, registry)
        provider.add_span_processor(SimpleSpanProcessor(result.exporter))
        await manager.start()
        started.append(manager)
        return result

    yield build
    for manager in started:
        await manager.close()


def _replica_url(pair: ReplicaPair, database: WorkerDatabase) -> str:
    return pair.replica.database_url(database.name)


@pytest.mark.asyncio
async def test_writes_go_to_the_primary_and_reads_to_the_replica(
    observed: Callable[[str], Any],
    fkit_replica_pair: ReplicaPair,
    fkit_replica_pair_database: WorkerDatabase,
) -> None:
    o: Observed = await observed(_replica_url(fkit_replica_pair, fkit_replica_pair_database))
    uow = AsyncSQLAlchemyUnitOfWork(o.manager)
    table = f"rep_{uuid.uuid4().hex[:10]}"
    async with uow.transaction() as tx:
        assert await tx.session.scalar(text("select pg_is_in_recovery()")) is False
        # The locks plugin's main path runs on the primary as usual.
        assert await try_advisory_xact_lock(tx.session, f"replica:{table}") is True
        await tx.session.execute(text(f"CREATE TABLE {table} (v int)"))
        await tx.session.execute(text(f"INSERT INTO {table} VALUES (42)"))
    fkit_replica_pair.wait_for_replay()
    try:
        async with uow.query(replica=True) as qx:
            assert await qx.session.scalar(text("select pg_is_in_recovery()")) is True
            assert await qx.session.scalar(text(f"SELECT v FROM {table}")) == 42
            assert qx.session.info["fkit.engine_name"] == "replica-1"
        with pytest.raises(ReadOnlyTransactionError):
            async with uow.query(replica=True) as qx:
                await qx.session.execute(text(f"INSERT INTO {table} VALUES (1)"))
    finally:
        async with uow.transaction() as tx:
            await tx.session.execute(text(f"DROP TABLE {table}"))
    assert o.fallbacks == []
    replica = {"manager": "replicated", "engine": "replica-1"}
    assert o.sample("fkit_postgres_transactions_total", kind="query", **replica) == 2
    assert o.sample("fkit_postgres_transactions_total", kind="query", engine="primary") == 0
    assert o.sample("fkit_postgres_errors_total", sqlstate_class="25", **replica) == 1
    engines = [s.attributes.get("fkit.engine.name") for s in o.spans("uow.query")]
    assert engines == ["replica-1", "replica-1"]
    assert [s.attributes.get("fkit.engine.name") for s in o.spans("uow.transaction")] == [
        "primary",
        "primary",
    ]
    assert len(o.spans("db.lock.wait")) == 1


@pytest.mark.asyncio
async def test_reads_fall_back_to_the_primary_when_the_replica_is_down(
    observed: Callable[[str], Any], dead_url: str
) -> None:
    o: Observed = await observed(dead_url)
    uow = AsyncSQLAlchemyUnitOfWork(o.manager)
    for _ in range(2):
        async with uow.query(replica=True) as qx:
            assert await qx.session.scalar(text("select pg_is_in_recovery()")) is False
            assert qx.session.info["fkit.engine_name"] == "primary"
    assert o.fallbacks
    assert {f.reason for f in o.fallbacks} == {"no replica is reachable"}
    report = await o.manager.health_report(engine_name="replica-1", timeout=2)
    assert not report.healthy
    primary = {"manager": "replicated", "engine": "primary"}
    # Read-only query blocks end in a rollback.
    assert o.sample("fkit_postgres_transactions_total", kind="query", **primary) == 2
    assert [s.attributes.get("fkit.engine.name") for s in o.spans("uow.query")] == [
        "primary",
        "primary",
    ]
