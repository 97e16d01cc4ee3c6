"""metrics_app(): a plain ASGI app serving a registry, usable alone or inside a framework."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fkit_metrics import PostgresMetrics, metrics_app

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from fkit_core import AsyncSessionManager


@pytest.mark.asyncio
async def test_metrics_app_serves_the_registry_in_the_prometheus_text_format(
    registry: CollectorRegistry, make_manager: Callable[..., AsyncSessionManager]
) -> None:
    await make_manager(PostgresMetrics(registry=registry)).start()
    transport = httpx.ASGITransport(app=metrics_app(registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.get("/metrics")
        openmetrics = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples["fkit_postgres_pool_size"] == 5
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


@pytest.mark.asyncio
async def test_metrics_app_answers_the_lifespan_protocol() -> None:
    from prometheus_client import CollectorRegistry

    app = metrics_app(CollectorRegistry())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


def test_metrics_app_serves_the_global_registry_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import REGISTRY

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert metrics_app().registry is REGISTRY  # type: ignore[attr-defined]
