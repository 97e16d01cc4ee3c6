"""Lock waits as child spans and health checks as spans, built from the bus events.

fkit-otel never imports fkit-locks (it is not a dependency, nor installed for these
tests): the lock events are defined in fkit-core, and here the tests emit them on the bus
themselves, exactly as a lock plugin would after taking or giving up a lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from opentelemetry.trace import StatusCode
from sqlalchemy import text

from fkit_core import AsyncSQLAlchemyUnitOfWork
from fkit_core.events import LockAcquired, LockNotAcquired, LockReleased
from fkit_otel import TracedAsyncUnitOfWork

if TYPE_CHECKING:
    from collections.abc import Callable

    from fkit_otel_testkit import Spans
    from opentelemetry.sdk.trace import TracerProvider

    from fkit_core import AsyncSessionManager


@pytest.mark.asyncio
async def test_a_lock_wait_is_a_child_span_timed_from_the_event(
    manager: AsyncSessionManager, spans: Spans
) -> None:
    spans.clear()
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    async with uow.transaction() as tx:
        await tx.session.execute(text("SELECT 1"))
        manager.bus.emit(LockAcquired(manager.name, "process_payments", 0.25, "transaction", False))
        manager.bus.emit(LockNotAcquired(manager.name, "user:42", 0.0, "session", True))
        manager.bus.emit(LockReleased(manager.name, "process_payments", 0.5, "transaction", False))
    transaction = spans.one("uow.transaction")
    acquired, refused = sorted(spans.named("db.lock.wait"), key=lambda s: s.start_time or 0)
    for lock in (acquired, refused):
        assert lock.parent is not None
        assert transaction.context is not None
        assert lock.parent.span_id == transaction.context.span_id
        assert lock.status.status_code is StatusCode.UNSET
    assert acquired.start_time is not None
    assert acquired.end_time is not None
    assert acquired.end_time - acquired.start_time == 250_000_000
    assert acquired.attributes is not None
    assert dict(acquired.attributes) == {
        "db.system": "postgresql",
        "fkit.lock.key": "process_payments",
        "fkit.lock.scope": "transaction",
        "fkit.lock.shared": False,
        "fkit.lock.acquired": True,
        "fkit.manager.name": "default",
    }
    assert refused.attributes is not None
    assert refused.attributes["fkit.lock.acquired"] is False
    assert refused.attributes["fkit.lock.shared"] is True
    assert refused.attributes["fkit.lock.scope"] == "session"
    assert refused.start_time == refused.end_time
    (released,) = transaction.events
    assert released.name == "fkit.lock.released"
    assert released.attributes is not None
    assert released.attributes["fkit.lock.held_seconds"] == 0.5


@pytest.mark.asyncio
async def test_a_traced_uow_alone_records_lock_waits_with_its_own_tracer(
    make_manager: Callable[..., AsyncSessionManager],
    tracer_provider: TracerProvider,
    spans: Spans,
) -> None:
    manager = make_manager()  # no plugin
    await manager.start()
    uow = TracedAsyncUnitOfWork(manager, tracer_provider=tracer_provider)
    async with uow.transaction():
        manager.bus.emit(LockAcquired(manager.name, "job", 0.1, "transaction", False))
    # Outside a traced transaction, without the plugin, nobody records it.
    manager.bus.emit(LockAcquired(manager.name, "job", 0.1, "transaction", False))
    transaction = spans.one("uow.transaction")
    (lock,) = spans.named("db.lock.wait")
    assert lock.parent is not None
    assert transaction.context is not None
    assert lock.parent.span_id == transaction.context.span_id


@pytest.mark.asyncio
async def test_health_checks_are_spans(manager: AsyncSessionManager, spans: Spans) -> None:
    spans.clear()
    assert await manager.healthcheck()
    report = await manager.health_report(query="SELECT * FROM otel_no_such_table")
    assert not report.healthy
    healthy, unhealthy = sorted(spans.named("db.health_check"), key=lambda s: s.start_time or 0)
    assert healthy.status.status_code is StatusCode.UNSET
    assert healthy.attributes is not None
    assert healthy.attributes["fkit.health.healthy"] is True
    assert healthy.attributes["fkit.engine.name"] == "primary"
    assert healthy.start_time is not None
    assert healthy.end_time is not None
    assert healthy.end_time > healthy.start_time
    assert unhealthy.status.status_code is StatusCode.ERROR
    assert unhealthy.attributes is not None
    assert unhealthy.attributes["fkit.health.healthy"] is False
    assert unhealthy.attributes["error.type"] == report.error.split(":", 1)[0]  # type: ignore[union-attr]
