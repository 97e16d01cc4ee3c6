"""``TracedAsyncUnitOfWork``: spans without the plugin, and no duplicates with it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from opentelemetry.trace import StatusCode
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from fkit_core import AsyncSQLAlchemyUowTransaction
from fkit_otel import TracedAsyncUnitOfWork, instrument_sqlalchemy

if TYPE_CHECKING:
    from collections.abc import Callable

    from fkit_otel_testkit import Spans
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core import AsyncSessionManager


class MyTransaction(AsyncSQLAlchemyUowTransaction):
    """A transaction class with a repository-like helper, as the reference kit shows."""

    async def ping(self) -> int:
        return int((await self.session.execute(text("SELECT 1"))).scalar_one())


@pytest.mark.asyncio
async def test_the_reference_constructor_traces_without_the_plugin(
    make_manager: Callable[..., AsyncSessionManager],
    tracer_provider: TracerProvider,
    spans: Spans,
) -> None:
    manager = make_manager()
    await manager.start()
    instrument_sqlalchemy(
        engine=manager.engine, service_name="identity-service", tracer_provider=tracer_provider
    )
    uow = TracedAsyncUnitOfWork(
        session_maker=manager.session_maker,
        transaction_factory=MyTransaction,
        service_name="identity-service",
        tracer_provider=tracer_provider,
    )
    spans.clear()
    async with uow.transaction(isolation_level="serializable") as tx:
        assert isinstance(tx, MyTransaction)
        assert await tx.ping() == 1
        async with tx.savepoint():
            await tx.ping()
    transaction = spans.one("uow.transaction")
    assert transaction.attributes is not None
    assert transaction.attributes["db.operation"] == "transaction"
    assert transaction.attributes["db.isolation_level"] == "SERIALIZABLE"
    assert transaction.attributes["db.system"] == "postgresql"
    assert transaction.attributes["service.name"] == "identity-service"
    assert transaction.attributes["fkit.engine.name"] == "primary"
    assert transaction.attributes["db.name"] == manager.engine.url.database
    assert transaction.attributes["db.transaction.outcome"] == "commit"
    # Current from before BEGIN: the isolation level's statement (psycopg) and the body's
    # statements are its children.
    assert "SELECT 1" in spans.statements(transaction)
    savepoint = spans.one("uow.savepoint")
    assert savepoint.parent is not None
    assert transaction.context is not None
    assert savepoint.parent.span_id == transaction.context.span_id
    assert savepoint.attributes is not None
    assert savepoint.attributes["service.name"] == "identity-service"
    assert "SELECT 1" in spans.statements(savepoint)
    for statement in spans.children(transaction):
        assert statement.attributes is not None
        if "db.statement" in statement.attributes:
            assert statement.attributes["service.name"] == "identity-service"


@pytest.mark.asyncio
async def test_query_and_managed_session_spans_without_the_plugin(
    make_manager: Callable[..., AsyncSessionManager],
    tracer_provider: TracerProvider,
    spans: Spans,
) -> None:
    manager = make_manager()
    await manager.start()
    uow = TracedAsyncUnitOfWork(manager, tracer_provider=tracer_provider)
    spans.clear()
    async with uow.query() as qx:
        await qx.session.execute(text("SELECT 1"))
    async with uow.managed_session() as (_tx, session):
        await session.execute(text("SELECT 1"))
        await session.commit()
    with pytest.raises(KeyError):
        async with uow.transaction():
            raise KeyError("nope")
    query = spans.one("uow.query")
    assert query.attributes is not None
    assert query.attributes["db.transaction.outcome"] == "rollback"
    assert query.attributes["db.transaction.readonly"] is True
    managed = spans.one("uow.managed_session")
    assert managed.attributes is not None
    assert managed.attributes["db.transaction.outcome"] == "commit"
    failed = spans.one("uow.transaction")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["db.transaction.outcome"] == "error"


@pytest.mark.asyncio
async def test_with_the_plugin_a_traced_block_has_exactly_one_span(
    manager: AsyncSessionManager, tracer_provider: TracerProvider, spans: Spans
) -> None:
    uow = TracedAsyncUnitOfWork(manager.session_maker, tracer_provider=tracer_provider)
    spans.clear()
    async with uow.transaction() as tx:
        await tx.session.execute(text("SELECT 1"))
        async with tx.savepoint():
            await tx.session.execute(text("SELECT 2"))
    transaction = spans.one("uow.transaction")
    savepoint = spans.one("uow.savepoint")
    assert savepoint.parent is not None
    assert transaction.context is not None
    assert savepoint.parent.span_id == transaction.context.span_id
    assert spans.statements(transaction) == ["SELECT 1"]
    assert "SELECT 2" in spans.statements(savepoint)


@pytest.mark.asyncio
async def test_a_bare_sessionmaker_is_traced_too(
    db_url: str, tracer_provider: TracerProvider, spans: Spans
) -> None:
    engine = create_async_engine(db_url)
    try:
        instrument_sqlalchemy(engine, tracer_provider=tracer_provider)
        maker: async_sessionmaker[AsyncSession] = async_sessionmaker(engine)
        uow = TracedAsyncUnitOfWork(maker, tracer_provider=tracer_provider)
        async with uow.transaction() as tx:
            await tx.session.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    transaction = spans.one("uow.transaction")
    assert transaction.attributes is not None
    assert transaction.attributes["db.name"] == engine.url.database
    assert spans.statements(transaction) == ["SELECT 1"]
