"""The dishka container: fkit's providers plus the demo's own."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dishka import AsyncContainer, Provider, Scope, make_async_container, provide

from fkit_demo.services import DemoMetrics
from fkit_demo.uow import DemoUnitOfWork
from fkit_dishka import (
    AsyncDatabaseProvider,
    AsyncUnitOfWorkProvider,
    PrometheusPostgresMetricsProvider,
)
from fkit_otel import OtelPlugin

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from fkit_core import BasePostgresConfig

__all__ = ["MANAGER_NAME", "make_container"]

MANAGER_NAME = "fkit-demo"  # the `manager` label of every fkit metric, and span attribute


class DemoProvider(Provider):
    """The service's own objects."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(scope=Scope.APP)
        self._registry = registry

    @provide
    def metrics(self) -> DemoMetrics:
        """The demo's counters, in the registry ``/metrics`` serves."""
        return DemoMetrics(self._registry)


def make_container(
    config: BasePostgresConfig,
    *,
    registry: CollectorRegistry,
    tracer_provider: TracerProvider | None = None,
    autoload: bool | None = None,
) -> AsyncContainer:
    """Wire the service: settings, manager, Unit of Work, metrics, traces.

    Installed plugins are discovered as usual (``autoload`` None: on, unless
    ``FKIT_DISABLE_PLUGIN_AUTOLOAD`` says otherwise). Two are passed configured, and so
    replace the discovered ones of the same name: ``prometheus`` (through
    ``PrometheusPostgresMetricsProvider``) records into ``registry``, and ``otel`` sends
    spans to ``tracer_provider``.
    """
    otel = OtelPlugin(tracer_provider=tracer_provider, service_name=MANAGER_NAME)
    return make_async_container(
        AsyncDatabaseProvider(
            config, plugins=[otel], autoload=autoload, name=MANAGER_NAME, close_timeout=10.0
        ),
        AsyncUnitOfWorkProvider(DemoUnitOfWork),
        PrometheusPostgresMetricsProvider(service_name=MANAGER_NAME, registry=registry),
        DemoProvider(registry),
    )
