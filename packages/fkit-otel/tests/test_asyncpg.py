"""``instrument_asyncpg``: idempotent, off unless configured, spans under the transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from fkit_otel_testkit import CANARY
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from sqlalchemy import text

from fkit_otel import OtelPlugin, instrument_asyncpg, uninstrument_asyncpg

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from fkit_otel_testkit import Spans
    from opentelemetry.sdk.trace import TracerProvider

    from fkit_core import AsyncSessionManager


@pytest.fixture
def fkit_each_driver() -> str:
    """These tests are about the asyncpg driver, whatever the run's driver."""
    return "asyncpg"


@pytest.fixture
def clean_asyncpg() -> Iterator[None]:
    """The instrumentation patches asyncpg process-wide: undo it for the tests that follow."""
    uninstrument_asyncpg()
    yield
    uninstrument_asyncpg()


@pytest.mark.usefixtures("clean_asyncpg")
def test_instrument_asyncpg_is_idempotent(tracer_provider: TracerProvider) -> None:
    assert instrument_asyncpg(tracer_provider=tracer_provider) is True
    assert instrument_asyncpg(tracer_provider=tracer_provider) is False
    assert AsyncPGInstrumentor().is_instrumented_by_opentelemetry
    assert uninstrument_asyncpg() is True
    assert uninstrument_asyncpg() is False
    assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry


@pytest.mark.usefixtures("clean_asyncpg")
@pytest.mark.asyncio
async def test_the_plugin_does_not_instrument_asyncpg_unless_asked(
    make_manager: Callable[..., AsyncSessionManager],
    tracer_provider: TracerProvider,
) -> None:
    manager = make_manager(OtelPlugin(tracer_provider=tracer_provider))
    await manager.start()
    assert not AsyncPGInstrumentor().is_instrumented_by_opentelemetry


@pytest.mark.usefixtures("clean_asyncpg")
@pytest.mark.asyncio
async def test_asked_its_driver_spans_are_children_of_the_transaction_without_parameters(
    make_manager: Callable[..., AsyncSessionManager],
    tracer_provider: TracerProvider,
    spans: Spans,
) -> None:
    manager = make_manager(OtelPlugin(tracer_provider=tracer_provider, asyncpg=True))
    await manager.start()
    assert AsyncPGInstrumentor().is_instrumented_by_opentelemetry
    spans.clear()
    async with manager.get_transaction() as session:
        await session.execute(text("SELECT :v"), {"v": CANARY})
    transaction = spans.one("uow.transaction")
    children = spans.children(transaction)
    ours = [
        s
        for s in children
        if s.instrumentation_scope and s.instrumentation_scope.name == "fkit_otel"
    ]
    theirs = [s for s in children if s not in ours]
    assert [s.attributes["db.statement"] for s in ours if s.attributes] == ["SELECT $1"]
    assert theirs, "no asyncpg span under the transaction"
    for span in theirs:
        assert span.attributes is not None
        assert "db.statement.parameters" not in span.attributes
