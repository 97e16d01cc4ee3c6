"""fkit-testing's capture fixtures with their plugins installed, and a web request's
transaction inside the rolled-back test transaction.

These cross packages (fkit-testing with fkit-metrics, fkit-otel and FastAPI), so they
live here rather than in fkit-testing's own tests, whose environment has none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from fkit_core import create_db_dependency

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager
    from fkit_testing import WorkerDatabase


@pytest.mark.asyncio
async def test_metrics_registry_gets_fkit_manager_metrics(
    fkit_manager: AsyncSessionManager, metrics_registry: Any
) -> None:
    assert [p.name for p in fkit_manager.plugins] == ["prometheus"]
    async with fkit_manager.get_transaction():
        pass
    labels = {"manager": "default", "engine": "primary", "kind": "transaction", "outcome": "commit"}
    assert metrics_registry.get_sample_value("fkit_postgres_transactions_total", labels) == 1.0


@pytest.mark.asyncio
async def test_each_test_gets_a_fresh_registry(
    fkit_manager: AsyncSessionManager, metrics_registry: Any
) -> None:
    labels = {"manager": "default", "engine": "primary", "kind": "transaction", "outcome": "commit"}
    assert metrics_registry.get_sample_value("fkit_postgres_transactions_total", labels) is None


@pytest.mark.asyncio
async def test_span_exporter_gets_fkit_manager_spans(
    fkit_manager: AsyncSessionManager, span_exporter: Any
) -> None:
    assert [p.name for p in fkit_manager.plugins] == ["otel"]
    async with fkit_manager.get_transaction() as session:
        await session.execute(text("SELECT 1"))
    names = [span.name for span in span_exporter.get_finished_spans()]
    assert "uow.transaction" in names


@pytest.mark.asyncio
async def test_all_capture_fixtures_at_once(
    fkit_manager: AsyncSessionManager,
    captured_events: Any,
    metrics_registry: Any,
    span_exporter: Any,
) -> None:
    assert sorted(p.name for p in fkit_manager.plugins) == [
        "fkit-testing-capture",
        "otel",
        "prometheus",
    ]
    async with fkit_manager.get_transaction():
        pass
    assert captured_events.names()[-1] == "TransactionEnded"
    assert span_exporter.get_finished_spans()


@pytest.mark.asyncio
async def test_a_request_transaction_runs_inside_the_test_transaction(
    fkit_manager: AsyncSessionManager, fkit_worker_database: WorkerDatabase
) -> None:
    import httpx
    from fastapi import Depends, FastAPI

    app = FastAPI()
    get_db = create_db_dependency(fkit_manager)

    @app.post("/notes")
    async def add_note(session: Any = Depends(get_db)) -> dict[str, int]:  # noqa: B008
        await session.execute(text("INSERT INTO request_notes VALUES ('from a request')"))
        return {"count": int(await session.scalar(text("SELECT count(*) FROM request_notes")))}

    async with fkit_manager.get_transaction() as session:
        await session.execute(text("CREATE TABLE request_notes (body text)"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/notes")).json() == {"count": 1}
        assert (await client.post("/notes")).json() == {"count": 2}
    # Committed by the request, inside the test's transaction: visible here, and nowhere
    # else (the table itself is rolled back with the test).
    async with fkit_manager.get_session() as session:
        assert await session.scalar(text("SELECT count(*) FROM request_notes")) == 2
    import asyncpg

    conn = await asyncpg.connect(fkit_worker_database.url)
    try:
        assert await conn.fetchval("SELECT to_regclass('request_notes')") is None
    finally:
        await conn.close()
