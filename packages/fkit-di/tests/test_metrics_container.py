"""PrometheusMetricsContainer: metrics when fkit-metrics is there, a clear error when not."""

from __future__ import annotations

import sys

import pytest
from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from fkit_core import QuerySettings
from fkit_core.errors import MissingDependencyError
from fkit_core.settings import BasePostgresConfig
from fkit_di import DatabaseContainer, PrometheusMetricsContainer


def test_the_metrics_are_configured_from_the_container() -> None:
    container = PrometheusMetricsContainer(
        default_prefix="myapp",
        service_name="identity-service",
        labels={"environment": "production"},
        registry=providers.Singleton(CollectorRegistry),
    )
    metrics = container.postgres_metrics()
    assert metrics is container.postgres_metrics()  # one instance
    assert (metrics.prefix, metrics.service_name) == ("myapp", "identity-service")
    assert metrics.labels == {"environment": "production"}


def test_the_service_label_defaults_to_the_application_name() -> None:
    settings = BasePostgresConfig(
        url="postgresql://db/app", query=QuerySettings(application_name="billing")
    )
    for given in (settings, {"query": {"application_name": "billing"}}):
        container = PrometheusMetricsContainer(postgres_settings=given)
        assert container.postgres_metrics().service_name == "billing"
    container = PrometheusMetricsContainer(postgres_settings=settings, service_name="explicit")
    assert container.postgres_metrics().service_name == "explicit"
    assert PrometheusMetricsContainer().postgres_metrics().service_name is None


def test_without_fkit_metrics_using_it_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fkit_metrics", None)  # as if it were not installed
    container = PrometheusMetricsContainer(default_prefix="myapp")  # building it is fine
    with pytest.raises(MissingDependencyError, match=r"fkit-di\[metrics\]") as caught:
        container.postgres_metrics()
    assert caught.value.distribution == "fkit-di[metrics]"


@pytest.mark.asyncio
async def test_without_fkit_metrics_a_database_container_not_given_metrics_works(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fkit_metrics", None)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)

    class App(containers.DeclarativeContainer):
        database = providers.Container(DatabaseContainer, postgres_config=db_url, autoload=False)

    container = App()
    await container.init_resources()
    manager = container.database.session_manager()
    assert manager.plugins == ()
    async with container.database.uow().transaction() as tx:
        assert (await tx.session.execute(text("SELECT 1"))).scalar_one() == 1
    await container.shutdown_resources()
    assert manager.state == "closed"
