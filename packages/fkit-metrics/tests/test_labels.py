"""Labels: managers and replicas told apart, constant labels, and nothing secret in any label."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fkit_metrics import PostgresMetrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from fkit_core import AsyncSessionManager

    from .conftest import Scrape


@pytest.mark.asyncio
async def test_two_managers_and_a_replica_in_one_process_are_told_apart(
    db_url: str,
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    metrics = PostgresMetrics(registry=registry)  # one instance serves both managers
    orders = make_manager(metrics, name="orders", replica_urls=[db_url])
    billing = make_manager(metrics, name="billing")
    await orders.start()
    await billing.start()
    for _ in range(2):
        async with orders.get_transaction() as session:
            await session.execute(text("SELECT 1"))
    async with billing.get_transaction() as session:
        await session.execute(text("SELECT 1"))
    held = await orders.engines["replica-1"].connect()
    try:
        await held.execute(text("SELECT 1"))
        scraped = scrape()
    finally:
        await held.close()

    pools = {
        (s.labels["manager"], s.labels["engine"]): s.value
        for s in scraped.matching("fkit_postgres_pool_checked_out")
    }
    assert pools == {
        ("orders", "primary"): 0,
        ("orders", "replica-1"): 1,
        ("billing", "primary"): 0,
    }
    commits = {
        s.labels["manager"]: s.value
        for s in scraped.matching("fkit_postgres_transactions_total", outcome="commit")
    }
    assert commits == {"orders": 2, "billing": 1}
    # Every series of every family carries both labels.
    for sample in scraped.samples:
        assert sample.labels.get("manager") in {"orders", "billing"}, sample
        assert sample.labels.get("engine") in {"primary", "replica-1"}, sample


@pytest.mark.asyncio
async def test_service_name_and_labels_become_constant_labels_on_every_series(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    metrics = PostgresMetrics(
        prefix="myapp",
        service_name="identity-service",
        labels={"environment": "production"},
        registry=registry,
    )
    manager = make_manager(metrics)
    await manager.start()
    async with manager.get_transaction() as session:
        await session.execute(text("SELECT 1"))
    scraped = scrape()
    names = {s.name for s in scraped.samples}
    assert {"myapp_postgres_pool_size", "myapp_postgres_transactions_total"} <= names
    assert all(name.startswith("myapp_postgres_") for name in names)
    for sample in scraped.samples:
        assert sample.labels["service"] == "identity-service", sample
        assert sample.labels["environment"] == "production", sample


@pytest.mark.asyncio
async def test_no_dsn_password_or_sql_text_appears_in_the_exposition(
    db_url: str,
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    url = make_url(db_url)
    if not url.password:
        # The test servers use trust authentication: any password is accepted and ignored.
        url = url.set(password="s3cret-Pa55word")  # noqa: S106
    password = str(url.password)
    rendered = url.render_as_string(hide_password=False)
    manager = make_manager(PostgresMetrics(registry=registry), url=rendered)
    await manager.start()
    async with manager.get_transaction() as session:
        await session.execute(text("SELECT 1 AS leak_marker_column"))
    with pytest.raises(Exception, match="division by zero"):
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1 / 0 AS another_leak_marker"))
    await manager.healthcheck(query="SELECT leak_marker_health_query")
    exposition = scrape().text
    for secret in (
        password,
        rendered,
        url.render_as_string(hide_password=True),
        f"{url.host}:{url.port}",
        "postgresql",
        "leak_marker",
        "division by zero",
        "SELECT",
    ):
        assert secret not in exposition, secret


@pytest.mark.asyncio
async def test_the_reference_dashboard_expressions_find_their_series(
    db_url: str,
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    metrics = PostgresMetrics(prefix="myapp", service_name="identity-service", registry=registry)
    manager = make_manager(metrics, replica_urls=[db_url])
    await manager.start()
    with pytest.raises(Exception, match="division by zero"):
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1 / 0"))
    scraped = scrape()

    def label_sets(name: str) -> list[tuple[tuple[str, str], ...]]:
        return sorted(tuple(sorted(s.labels.items())) for s in scraped.matching(name))

    # (myapp_postgres_pool_checked_out / myapp_postgres_pool_size) * 100 divides one to
    # one: both gauges have exactly the same label sets, one per engine.
    sizes = label_sets("myapp_postgres_pool_size")
    assert len(sizes) == 2
    assert label_sets("myapp_postgres_pool_checked_out") == sizes
    # histogram_quantile(0.95, rate(myapp_postgres_checkout_duration_seconds_bucket[5m]))
    buckets = scraped.matching("myapp_postgres_checkout_duration_seconds_bucket", engine="primary")
    assert buckets[-1].labels["le"] == "+Inf"
    counts = [b.value for b in buckets]
    assert counts == sorted(counts)
    assert counts[-1] == scraped.value(
        "myapp_postgres_checkout_duration_seconds_count", engine="primary"
    )
    # rate(myapp_postgres_errors_total[5m])
    assert scraped.value("myapp_postgres_errors_total") == 1
