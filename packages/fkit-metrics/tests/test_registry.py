"""Several PostgresMetrics on one registry share the families instead of crashing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from prometheus_client import Counter
from sqlalchemy import text

from fkit_core.errors import ConfigurationError, PluginError
from fkit_metrics import PostgresMetrics

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from fkit_core import AsyncSessionManager

    from .conftest import Scrape


@pytest.mark.asyncio
async def test_a_second_instance_on_the_same_registry_reuses_the_metrics(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    first = make_manager(PostgresMetrics(registry=registry, service_name="a"), name="one")
    second = make_manager(PostgresMetrics(registry=registry, service_name="b"), name="two")
    await first.start()
    await second.start()  # prometheus_client alone would raise "Duplicated timeseries"
    for manager in (first, second):
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 1"))
    scraped = scrape()
    commits = {
        (s.labels["manager"], s.labels["service"]): s.value
        for s in scraped.matching("fkit_postgres_transactions_total")
    }
    assert commits == {("one", "a"): 1, ("two", "b"): 1}
    assert len(scraped.matching("fkit_postgres_pool_size")) == 2


@pytest.mark.asyncio
async def test_another_prefix_on_the_same_registry_is_a_separate_set(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    await make_manager(PostgresMetrics(registry=registry), name="one").start()
    await make_manager(PostgresMetrics(prefix="", registry=registry), name="two").start()
    scraped = scrape()
    assert scraped.value("fkit_postgres_pool_size", manager="one") == 5
    assert scraped.value("postgres_pool_size", manager="two") == 5
    assert scraped.matching("fkit_postgres_pool_size", manager="two") == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"labels": {"team": "x"}}, "constant label names"),
        ({"buckets": [0.1, 1.0]}, "buckets"),
    ],
)
async def test_other_label_names_or_buckets_on_the_same_prefix_are_a_clear_error(
    registry: CollectorRegistry,
    make_manager: Callable[..., AsyncSessionManager],
    options: dict[str, object],
    message: str,
) -> None:
    await make_manager(PostgresMetrics(registry=registry), name="one").start()
    clashing = make_manager(PostgresMetrics(registry=registry, **options), name="two")  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="'prometheus' failed to set up") as info:
        await clashing.start()
    cause = info.value.__cause__
    assert isinstance(cause, ConfigurationError)
    assert message in str(cause)
    assert "use another prefix or registry" in str(cause)


@pytest.mark.asyncio
async def test_names_taken_by_another_collector_are_a_clear_error_and_leave_nothing_behind(
    registry: CollectorRegistry,
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    Counter("fkit_postgres_retries", "someone else's metric", registry=registry)
    manager = make_manager(PostgresMetrics(registry=registry))
    with pytest.raises(PluginError) as info:
        await manager.start()
    cause = info.value.__cause__
    assert isinstance(cause, ConfigurationError)
    assert "Duplicated timeseries" in str(cause)
    assert "choose another prefix" in str(cause)
    # The families registered before the clash were taken out again.
    assert {s.name for s in scrape().samples} == {
        "fkit_postgres_retries_total",
        "fkit_postgres_retries_created",
    }


@pytest.mark.asyncio
async def test_one_instance_on_the_global_registry_serves_several_managers(
    scrape: Callable[[], Scrape],
    make_manager: Callable[..., AsyncSessionManager],
) -> None:
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    # The installed plugin's default: prefix "fkit" on prometheus_client's REGISTRY,
    # shared by every manager of the process (other tests may have used it too).
    first, second = PostgresMetrics(), PostgresMetrics()
    assert first.registry is REGISTRY
    a = make_manager(first, name="global-registry-a")
    b = make_manager(second, name="global-registry-b")
    await a.start()
    await b.start()
    sizes = {
        s.labels["manager"]: s.value
        for family in text_string_to_metric_families(generate_latest(REGISTRY).decode())
        for s in family.samples
        if s.name == "fkit_postgres_pool_size"
    }
    assert sizes["global-registry-a"] == sizes["global-registry-b"] == 5
