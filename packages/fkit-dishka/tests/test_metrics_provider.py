"""PrometheusPostgresMetricsProvider: metrics when fkit-metrics is there, a clear error when not."""

# No `from __future__ import annotations`: dishka reads the providers' annotations.
import sys

import pytest
from dishka import make_async_container
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, Plugin
from fkit_core.errors import ConfigurationError, MissingDependencyError
from fkit_core.settings import BasePostgresConfig
from fkit_dishka import (
    AsyncDatabaseProvider,
    AsyncUnitOfWorkProvider,
    PrometheusPostgresMetricsProvider,
)
from fkit_metrics import PostgresMetrics


@pytest.mark.asyncio
async def test_the_provided_metrics_are_set_up_on_the_manager(
    config: BasePostgresConfig,
) -> None:
    registry = CollectorRegistry()
    container = make_async_container(
        AsyncDatabaseProvider(config, autoload=False, name="billing"),
        PrometheusPostgresMetricsProvider(
            prefix="myapp",
            service_name="identity-service",
            labels={"environment": "test"},
            registry=registry,
        ),
    )
    metrics = await container.get(PostgresMetrics)
    assert await container.get(list[Plugin]) == [metrics]
    manager = await container.get(AsyncSessionManager)
    assert manager.plugins == (metrics,)
    async with container() as request:
        await (await request.get(AsyncSession)).execute(text("SELECT 1"))
    labels = {
        "manager": "billing",
        "engine": "primary",
        "service": "identity-service",
        "environment": "test",
    }
    assert registry.get_sample_value("myapp_postgres_pool_size", labels) == 5
    commits = {**labels, "kind": "transaction", "outcome": "commit"}
    assert registry.get_sample_value("myapp_postgres_transactions_total", commits) == 1
    await container.close()


def test_invalid_metrics_settings_fail_when_the_provider_is_built() -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        PrometheusPostgresMetricsProvider(prefix="not a prefix")


def test_without_fkit_metrics_the_provider_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fkit_metrics", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"fkit-dishka\[metrics\]") as caught:
        PrometheusPostgresMetricsProvider(prefix="myapp")
    assert isinstance(caught.value, ImportError)
    assert caught.value.distribution == "fkit-dishka[metrics]"


@pytest.mark.asyncio
async def test_without_fkit_metrics_the_rest_of_the_container_builds_and_works(
    config: BasePostgresConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reference kit's container cannot be built without its metrics provider.
    monkeypatch.setitem(sys.modules, "fkit_metrics", None)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    container = make_async_container(
        AsyncDatabaseProvider(config, autoload=False), AsyncUnitOfWorkProvider()
    )
    manager = await container.get(AsyncSessionManager)
    assert manager.plugins == ()
    uow = await container.get(AsyncSQLAlchemyUnitOfWork)
    async with uow.query() as qx:
        assert (await qx.session.execute(text("SELECT 1"))).scalar_one() == 1
    await container.close()
    assert manager.state == "closed"
