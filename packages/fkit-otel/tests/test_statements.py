"""Statement spans from cursor events: every engine, once per engine, in every naming mode."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from fkit_otel_testkit import CANARY, PASSWORD
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fkit_core import AsyncSQLAlchemyUnitOfWork
from fkit_otel import OtelPlugin, instrument_sqlalchemy, uninstrument_sqlalchemy
from fkit_otel._statements import is_instrumented

if TYPE_CHECKING:
    from collections.abc import Callable

    from fkit_otel_testkit import Spans
    from opentelemetry.sdk.trace import TracerProvider

    from fkit_core import AsyncSessionManager


@pytest.mark.asyncio
async def test_the_plugin_instruments_the_primary_and_every_replica(
    make_manager: Callable[..., AsyncSessionManager], plugin: OtelPlugin, db_url: str, spans: Spans
) -> None:
    manager = make_manager(plugin, replica_urls=[db_url])
    await manager.start()
    engines = manager.engines
    assert sorted(engines) == ["primary", "replica-1"]
    assert all(is_instrumented(engine) for engine in engines.values())
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    spans.clear()
    async with uow.transaction() as tx:
        await tx.session.execute(text("SELECT 'on the primary'"))
    async with uow.query(replica=True) as qx:
        await qx.session.execute(text("SELECT 'on the replica'"))
    transaction, query = spans.one("uow.transaction"), spans.one("uow.query")
    assert transaction.attributes is not None
    assert query.attributes is not None
    assert transaction.attributes["fkit.engine.name"] == "primary"
    assert query.attributes["fkit.engine.name"] == "replica-1"
    assert spans.statements(transaction) == ["SELECT 'on the primary'"]
    assert spans.statements(query)[-1] == "SELECT 'on the replica'"
    await manager.close()
    # Closing the manager takes the plugin's listeners off its engines again.
    assert not any(is_instrumented(engine) for engine in engines.values())


@pytest.mark.asyncio
async def test_instrumenting_an_engine_twice_gives_one_span_per_statement(
    make_manager: Callable[..., AsyncSessionManager], tracer_provider: TracerProvider, spans: Spans
) -> None:
    manager = make_manager()
    await manager.start()
    assert instrument_sqlalchemy(manager.engine, tracer_provider=tracer_provider) is True
    assert instrument_sqlalchemy(manager.engine, tracer_provider=tracer_provider) is False
    assert (
        instrument_sqlalchemy(manager.engine.sync_engine, tracer_provider=tracer_provider) is False
    )
    async with manager.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    assert [s.name for s in spans.all()] == [f"SELECT {manager.engine.url.database}"]
    assert uninstrument_sqlalchemy(manager.engine) is True
    assert uninstrument_sqlalchemy(manager.engine) is False
    async with manager.engine.connect() as conn:
        await conn.execute(text("SELECT 2"))
    assert len(spans.all()) == 1


def test_a_sync_engine_is_instrumented_too(
    fkit_database_url: str, tracer_provider: TracerProvider, spans: Spans
) -> None:
    url = make_url(fkit_database_url).set(drivername="postgresql+psycopg", password=PASSWORD)
    engine = create_engine(url)
    try:
        assert instrument_sqlalchemy(engine, "sync-service", tracer_provider=tracer_provider)
        with engine.connect() as conn:
            conn.execute(text("SELECT :v"), {"v": CANARY})
    finally:
        engine.dispose()
    (span,) = spans.all()
    assert span.attributes is not None
    assert span.attributes["db.statement"] == "SELECT %(v)s"
    assert span.attributes["service.name"] == "sync-service"
    assert span.attributes["net.peer.port"] == url.port


@pytest.mark.parametrize("recording", [True, False], ids=["armed", "waiting"])
def test_instrumenting_does_not_keep_the_engine_alive(
    fkit_database_url: str, tracer_provider: TracerProvider, recording: bool
) -> None:
    import gc
    import weakref

    url = make_url(fkit_database_url).set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    # With the global (no-op) provider the listeners wait for one that records.
    assert instrument_sqlalchemy(engine, tracer_provider=tracer_provider if recording else None)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert engine._has_events is recording
    engine.dispose()
    gone = weakref.ref(engine)
    del engine, conn
    gc.collect()
    assert gone() is None


def test_anything_but_an_engine_is_refused() -> None:
    with pytest.raises(TypeError, match="AsyncEngine or Engine"):
        instrument_sqlalchemy("postgresql://nope")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_statements_false_leaves_the_engines_alone(
    make_manager: Callable[..., AsyncSessionManager], tracer_provider: TracerProvider, spans: Spans
) -> None:
    manager = make_manager(OtelPlugin(tracer_provider=tracer_provider, statements=False))
    await manager.start()
    spans.clear()
    async with manager.get_transaction() as session:
        await session.execute(text("SELECT 1"))
    assert [s.name for s in spans.all()] == ["uow.transaction"]
    assert not is_instrumented(manager.engine)


MODES = {
    "": (
        {"db.system", "db.name", "db.statement", "net.peer.name", "net.peer.port"},
        {"db.system", "db.name", "db.operation"},
    ),
    "database": (
        {
            "db.system.name",
            "db.namespace",
            "db.query.text",
            "db.operation.name",
            "server.address",
            "server.port",
        },
        {"db.system.name", "db.namespace", "db.operation.name"},
    ),
}
MODES["http,database/dup"] = (
    MODES[""][0] | MODES["database"][0],
    MODES[""][1] | MODES["database"][1],
)


@pytest.mark.parametrize("opt_in", list(MODES), ids=["old", "stable", "dup"])
@pytest.mark.asyncio
async def test_the_semconv_opt_in_chooses_the_attribute_names(
    opt_in: str,
    monkeypatch: pytest.MonkeyPatch,
    make_manager: Callable[..., AsyncSessionManager],
    tracer_provider: TracerProvider,
    spans: Spans,
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    manager = make_manager(OtelPlugin(tracer_provider=tracer_provider))
    await manager.start()
    spans.clear()
    async with manager.get_transaction() as session:
        await session.execute(text("SELECT 1"))
    transaction = spans.one("uow.transaction")
    (statement,) = spans.children(transaction)
    statement_names, transaction_names = MODES[opt_in]
    fkit_own = {
        "db.transaction.readonly",
        "db.transaction.outcome",
        "fkit.engine.name",
        "fkit.manager.name",
    }
    assert statement.attributes is not None
    assert transaction.attributes is not None
    assert set(statement.attributes) == statement_names
    assert set(transaction.attributes) == transaction_names | fkit_own
    url = manager.engine.url
    for key, value in {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.statement": "SELECT 1",
        "db.query.text": "SELECT 1",
        "db.name": url.database,
        "db.namespace": url.database,
        "db.operation.name": "SELECT",
        "server.address": url.host,
        "server.port": url.port,
    }.items():
        if key in statement.attributes:
            assert statement.attributes[key] == value
    if "db.operation.name" in transaction.attributes:
        assert transaction.attributes["db.operation.name"] == "transaction"


# In a fresh interpreter: the global provider can be set only once per process.
_SET_LATER = """
import asyncio, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from fkit_core import AsyncSessionManager
from fkit_otel import OtelPlugin

async def main():
    manager = AsyncSessionManager(sys.argv[1], plugins=[OtelPlugin()], autoload=False)
    async with manager:
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1"))
        # Nothing can be recorded yet: the engine carries no statement listeners.
        print("before", manager.engine.sync_engine._has_events)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 2"))
        print("after", manager.engine.sync_engine._has_events)
        names = sorted(s.name for s in exporter.get_finished_spans())
        print("spans", names)

asyncio.run(main())
"""


def test_statement_listeners_wait_for_a_provider_that_records(db_url: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _SET_LATER, db_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "before False"
    assert lines[1] == "after True"
    # The first transaction after the provider was set is traced, statement included.
    assert lines[2] == "spans ['SELECT postgres', 'uow.transaction']"
