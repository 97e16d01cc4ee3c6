"""A serialization failure retried by ``uow.run``: the failed attempt's span carries the retry."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from uuid import uuid4

import pytest
import pytest_asyncio
from opentelemetry.trace import StatusCode
from sqlalchemy import text

from fkit_core import AsyncSQLAlchemyUnitOfWork, IsolationLevel, RetryConfig
from fkit_otel import TracedAsyncUnitOfWork

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from fkit_otel_testkit import Spans
    from opentelemetry.sdk.trace import TracerProvider

    from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUowTransaction

HANG_GUARD = 30
FAST = RetryConfig(max_attempts=4, initial_delay=0.01, max_delay=0.02, jitter=False)


@pytest_asyncio.fixture
async def ledger(manager: AsyncSessionManager) -> AsyncIterator[str]:
    name = f"otel_ledger_{uuid4().hex[:10]}"
    async with manager.engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {name} (id serial PRIMARY KEY, amount int)"))
    yield name
    async with manager.engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def write_skew(ledger: str) -> Callable[[AsyncSQLAlchemyUowTransaction], object]:
    """Two of these in SERIALIZABLE, both past their read before either writes: one fails."""
    barrier = asyncio.Barrier(2)
    first_attempts: set[int] = set()

    async def work(tx: AsyncSQLAlchemyUowTransaction) -> None:
        await tx.session.execute(text(f"SELECT coalesce(sum(amount), 0) FROM {ledger}"))
        me = id(asyncio.current_task())
        if me not in first_attempts:
            # Only the first attempts meet; a retry must not wait for a partner.
            first_attempts.add(me)
            await barrier.wait()
        await tx.session.execute(text(f"INSERT INTO {ledger} (amount) VALUES (1)"))

    return work


async def run_two(
    uow: AsyncSQLAlchemyUnitOfWork[AsyncSQLAlchemyUowTransaction], ledger: str
) -> None:
    work = write_skew(ledger)
    async with asyncio.timeout(HANG_GUARD):
        await asyncio.gather(
            *(
                uow.run(work, isolation_level=IsolationLevel.SERIALIZABLE, retry=FAST)  # type: ignore[arg-type]
                for _ in range(2)
            )
        )


def check_retried_tree(spans: Spans, ledger: str) -> None:
    attempts = spans.named("uow.transaction")
    failed = [s for s in attempts if s.status.status_code is StatusCode.ERROR]
    committed = [
        s for s in attempts if s.attributes and s.attributes["db.transaction.outcome"] == "commit"
    ]
    assert len(attempts) == 3, [s.name for s in spans.all()]
    assert len(failed) == 1
    assert len(committed) == 2
    (span,) = failed
    assert span.attributes is not None
    assert span.attributes["db.transaction.outcome"] == "error"
    assert span.attributes["db.isolation_level"] == "SERIALIZABLE"
    assert span.attributes["db.response.status_code"] == "40001"
    assert span.attributes["error.type"] == "fkit_core.errors.SerializationFailureError"
    (exception, retry) = span.events
    assert exception.name == "exception"
    assert retry.name == "fkit.retry"
    assert retry.attributes is not None
    assert retry.attributes["fkit.retry.attempt"] == 1
    assert retry.attributes["fkit.retry.delay"] == pytest.approx(0.01)
    assert retry.attributes["fkit.retry.reason"] == "SerializationFailureError"
    assert retry.attributes["db.response.status_code"] == "40001"
    assert "work" in str(retry.attributes["fkit.retry.operation"])
    # The span ended when the transaction did, not when the retry was noted.
    assert span.end_time is not None
    assert retry.timestamp is not None
    assert span.end_time <= retry.timestamp
    # Both statements of each attempt are children of that attempt's span.
    for attempt in attempts:
        kinds = [s.split()[0] for s in spans.statements(attempt)]
        assert kinds[0] == "SELECT"


@pytest.mark.asyncio
async def test_a_retried_serialization_failure_with_the_plugin(
    manager: AsyncSessionManager, spans: Spans, ledger: str
) -> None:
    spans.clear()
    await run_two(AsyncSQLAlchemyUnitOfWork(manager), ledger)
    check_retried_tree(spans, ledger)


@pytest.mark.asyncio
async def test_a_retried_serialization_failure_with_traced_uow_alone(
    make_manager: Callable[..., AsyncSessionManager],
    tracer_provider: TracerProvider,
    spans: Spans,
) -> None:
    manager = make_manager()  # no plugin
    await manager.start()
    ledger = f"otel_ledger_{uuid4().hex[:10]}"
    async with manager.get_transaction() as session:
        await session.execute(text(f"CREATE TABLE {ledger} (id serial PRIMARY KEY, amount int)"))
    try:
        from fkit_otel import instrument_sqlalchemy

        instrument_sqlalchemy(manager.engine, tracer_provider=tracer_provider)
        uow = TracedAsyncUnitOfWork(manager.session_maker, tracer_provider=tracer_provider)
        spans.clear()
        await run_two(uow, ledger)
        check_retried_tree(spans, ledger)
    finally:
        async with manager.get_transaction() as session:
            await session.execute(text(f"DROP TABLE IF EXISTS {ledger}"))


@pytest.mark.asyncio
async def test_a_retry_outside_any_fkit_transaction_goes_on_the_current_span(
    manager: AsyncSessionManager, spans: Spans, tracer_provider: TracerProvider
) -> None:
    from fkit_core.events import RetryScheduled

    spans.clear()
    with tracer_provider.get_tracer("app").start_as_current_span("job"):
        manager.bus.emit(RetryScheduled(manager.name, 2, 0.5, "ConnectionLostError", "fetch"))
    job = spans.one("job")
    (event,) = job.events
    assert event.name == "fkit.retry"
    assert event.attributes is not None
    assert dict(event.attributes) == {
        "fkit.retry.attempt": 2,
        "fkit.retry.delay": 0.5,
        "fkit.retry.reason": "ConnectionLostError",
        "fkit.retry.operation": "fetch",
    }
