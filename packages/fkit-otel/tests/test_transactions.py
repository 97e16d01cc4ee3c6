"""Transaction spans through the plugin's scope hook: tree, attributes, status and outcome."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from uuid import uuid4

import pytest
import pytest_asyncio
from fkit_otel_testkit import CANARY, CANARY_NUMBER
from opentelemetry.trace import StatusCode
from sqlalchemy import text

from fkit_core import AsyncSQLAlchemyUnitOfWork, IsolationLevel, get_transaction
from fkit_core.errors import UniqueViolationError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from fkit_otel_testkit import Spans
    from opentelemetry.sdk.trace import TracerProvider

    from fkit_core import AsyncSessionManager

HANG_GUARD = 30


@pytest_asyncio.fixture
async def table(manager: AsyncSessionManager) -> AsyncIterator[str]:
    name = f"otel_rows_{uuid4().hex[:10]}"
    async with manager.engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {name} (id int PRIMARY KEY, note text)"))
    yield name
    async with manager.engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


@pytest.mark.asyncio
async def test_a_transaction_with_two_statements_and_a_savepoint_is_one_tree(
    manager: AsyncSessionManager, spans: Spans, table: str
) -> None:
    spans.clear()
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    async with uow.transaction() as tx:
        await tx.session.execute(
            text(f"INSERT INTO {table} (id, note) VALUES (:id, :note)"),
            {"id": CANARY_NUMBER, "note": f"{CANARY}-1"},
        )
        await tx.session.execute(
            text(f"SELECT note FROM {table} WHERE note = :note"), {"note": CANARY}
        )
        async with tx.savepoint():
            await tx.session.execute(text(f"UPDATE {table} SET note = :note"), {"note": CANARY})

    transaction = spans.one("uow.transaction")
    savepoint = spans.one("uow.savepoint")
    assert transaction.parent is None
    assert savepoint.parent is not None
    assert transaction.context is not None
    assert savepoint.parent.span_id == transaction.context.span_id
    # Statement spans are children of the span that was current when they ran.
    outer = spans.statements(transaction)
    assert [s.split()[0] for s in outer] == ["INSERT", "SELECT"]
    assert "note" in outer[0]
    inner = spans.statements(savepoint)
    assert [s.split()[0] for s in inner] == ["SAVEPOINT", "UPDATE", "RELEASE"]
    # Children lie inside their parent in time.
    for child in spans.children(transaction):
        assert transaction.start_time is not None
        assert transaction.end_time is not None
        assert child.start_time is not None
        assert child.end_time is not None
        assert transaction.start_time <= child.start_time <= child.end_time <= transaction.end_time

    assert transaction.attributes is not None
    assert dict(transaction.attributes) == {
        "db.system": "postgresql",
        "db.name": manager.engine.url.database,
        "db.operation": "transaction",
        "db.transaction.readonly": False,
        "db.transaction.outcome": "commit",
        "fkit.engine.name": "primary",
        "fkit.manager.name": "default",
    }
    assert savepoint.attributes is not None
    assert savepoint.attributes["db.operation"] == "savepoint"
    assert savepoint.attributes["db.transaction.outcome"] == "commit"
    statement = spans.children(transaction)[0]
    assert statement.attributes is not None
    assert statement.attributes["db.system"] == "postgresql"
    assert statement.attributes["net.peer.name"] == manager.engine.url.host
    assert statement.name == f"INSERT {manager.engine.url.database}"


@pytest.mark.asyncio
async def test_commit_leaves_the_status_unset_with_outcome_commit(
    manager: AsyncSessionManager, spans: Spans
) -> None:
    spans.clear()
    async with manager.get_transaction(IsolationLevel.REPEATABLE_READ) as session:
        await session.execute(text("SELECT 1"))
    span = spans.one("uow.transaction")
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["db.transaction.outcome"] == "commit"
    assert span.attributes["db.isolation_level"] == "REPEATABLE READ"
    assert not span.events


@pytest.mark.asyncio
async def test_rollback_of_a_query_and_of_an_uncommitted_managed_session(
    manager: AsyncSessionManager, spans: Spans
) -> None:
    spans.clear()
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    async with uow.query() as qx:
        await qx.session.execute(text("SELECT 1"))
    async with uow.managed_session() as (_tx, session):
        await session.execute(text("SELECT 2"))
    query = spans.one("uow.query")
    managed = spans.one("uow.managed_session")
    for span in (query, managed):
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes is not None
        assert span.attributes["db.transaction.outcome"] == "rollback"
    assert query.attributes is not None
    assert query.attributes["db.transaction.readonly"] is True
    assert query.attributes["db.operation"] == "query"


@pytest.mark.asyncio
async def test_a_managed_session_that_commits_has_outcome_commit(
    manager: AsyncSessionManager, spans: Spans
) -> None:
    spans.clear()
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    async with uow.managed_session() as (_tx, session):
        await session.execute(text("SELECT 1"))
        await session.commit()
    span = spans.one("uow.managed_session")
    assert span.attributes is not None
    assert span.attributes["db.transaction.outcome"] == "commit"
    assert span.attributes["db.operation"] == "managed_session"


@pytest.mark.asyncio
async def test_an_exception_in_the_body_is_recorded_and_sets_error(
    manager: AsyncSessionManager, spans: Spans
) -> None:
    spans.clear()
    with pytest.raises(ValueError, match="boom"):
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1"))
            raise ValueError("boom")
    span = spans.one("uow.transaction")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: boom"
    assert span.attributes is not None
    assert span.attributes["db.transaction.outcome"] == "error"
    assert span.attributes["error.type"] == "ValueError"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "boom"
    assert "raise ValueError" in str(event.attributes["exception.stacktrace"])


@pytest.mark.asyncio
async def test_a_database_error_is_recorded_by_class_and_sqlstate_without_values(
    manager: AsyncSessionManager, spans: Spans, table: str
) -> None:
    insert = text(f"INSERT INTO {table} (id, note) VALUES (:id, :note)")
    async with manager.get_transaction() as session:
        await session.execute(insert, {"id": CANARY_NUMBER, "note": CANARY})
    spans.clear()
    with pytest.raises(UniqueViolationError):
        async with manager.get_transaction() as session:
            await session.execute(insert, {"id": CANARY_NUMBER, "note": f"{CANARY}-again"})
    transaction = spans.one("uow.transaction")
    assert transaction.status.status_code is StatusCode.ERROR
    assert transaction.attributes is not None
    assert transaction.attributes["error.type"] == "fkit_core.errors.UniqueViolationError"
    assert transaction.attributes["db.response.status_code"] == "23505"
    (event,) = transaction.events
    assert event.attributes is not None
    assert event.attributes["exception.message"] == f"SQLSTATE 23505, constraint {table}_pkey"
    # The failed statement is an error span too; the canary check in conftest proves that
    # neither the key value (in PostgreSQL's DETAIL) nor the parameters were recorded.
    (statement,) = spans.children(transaction)
    assert statement.status.status_code is StatusCode.ERROR
    assert statement.attributes is not None
    assert statement.attributes["db.response.status_code"] == "23505"


@pytest.mark.asyncio
async def test_cancellation_sets_error_with_outcome_cancelled(
    manager: AsyncSessionManager, spans: Spans
) -> None:
    spans.clear()
    marker = f"otel-cancel-{uuid4().hex}"

    async def body() -> None:
        async with manager.get_transaction() as session:
            await session.execute(text(f"SELECT pg_sleep(30) /* {marker} */"))

    task = asyncio.create_task(body())
    # Cancel only once the sleep runs on the server, so the statement span is open too.
    async with asyncio.timeout(HANG_GUARD):
        while True:
            async with manager.engine.connect() as conn:
                running = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE :q AND pid <> pg_backend_pid()"
                    ),
                    {"q": f"%{marker}%"},
                )
            if running:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    transaction = spans.one("uow.transaction")
    assert transaction.status.status_code is StatusCode.ERROR
    assert transaction.status.description == "cancelled"
    assert transaction.attributes is not None
    assert transaction.attributes["db.transaction.outcome"] == "cancelled"
    (statement,) = [
        s for s in spans.children(transaction) if "pg_sleep" in s.name or "SELECT" in s.name
    ]
    assert statement.status.status_code is StatusCode.ERROR
    assert statement.end_time is not None


@pytest.mark.asyncio
async def test_get_transaction_on_a_session_is_a_transaction_then_a_savepoint(
    manager: AsyncSessionManager, spans: Spans
) -> None:
    spans.clear()
    async with manager.get_session() as session, get_transaction(session):
        async with get_transaction(session):
            await session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError):
            async with get_transaction(session):
                raise RuntimeError("inner only")
    transaction = spans.one("uow.transaction")
    first, second = sorted(spans.named("uow.savepoint"), key=lambda s: s.start_time or 0)
    for savepoint in (first, second):
        assert savepoint.parent is not None
        assert transaction.context is not None
        assert savepoint.parent.span_id == transaction.context.span_id
    assert first.status.status_code is StatusCode.UNSET
    assert second.status.status_code is StatusCode.ERROR
    assert second.attributes is not None
    assert second.attributes["db.transaction.outcome"] == "error"
    assert transaction.attributes is not None
    assert transaction.attributes["db.transaction.outcome"] == "commit"


@pytest.mark.asyncio
async def test_transaction_spans_are_children_of_the_callers_span(
    manager: AsyncSessionManager, spans: Spans, tracer_provider: object
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    assert isinstance(tracer_provider, TracerProvider)
    tracer = tracer_provider.get_tracer("app")
    spans.clear()
    with tracer.start_as_current_span("handle-request") as request_span:
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1"))
    transaction = spans.one("uow.transaction")
    assert transaction.parent is not None
    assert transaction.parent.span_id == request_span.get_span_context().span_id
    assert spans.statements(transaction) == ["SELECT 1"]


@pytest.mark.asyncio
async def test_with_a_no_op_provider_nothing_is_recorded_and_the_callers_span_stays_current(
    make_manager: Callable[..., AsyncSessionManager], tracer_provider: TracerProvider, spans: Spans
) -> None:
    from opentelemetry.trace import NoOpTracerProvider

    from fkit_otel import OtelPlugin
    from fkit_otel._tracing import Tracing

    assert Tracing(NoOpTracerProvider()).may_record() is False
    assert Tracing(tracer_provider).may_record() is True
    manager = make_manager(OtelPlugin(tracer_provider=NoOpTracerProvider()))
    await manager.start()
    app = tracer_provider.get_tracer("app")
    with app.start_as_current_span("request") as request:
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1"))
            # No no-op span was made current over the caller's.
            inner = app.start_span("inside")
            inner.end()
    (inside,) = spans.named("inside")
    assert inside.parent is not None
    assert inside.parent.span_id == request.get_span_context().span_id
    assert sorted(s.name for s in spans.all()) == ["inside", "request"]
