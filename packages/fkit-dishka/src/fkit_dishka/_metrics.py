"""``PrometheusPostgresMetricsProvider``: fkit-metrics' plugin, provided when installed.

fkit-metrics is an optional dependency (the ``metrics`` extra): it is imported when this
provider is built, never when ``fkit_dishka`` is imported.
"""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dishka import AnyOf, BaseScope, Provider, Scope

from fkit_core import Plugin
from fkit_core.errors import MissingDependencyError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


__all__ = ["PrometheusPostgresMetricsProvider"]


class PrometheusPostgresMetricsProvider(Provider):
    """Provides a configured ``fkit_metrics.PostgresMetrics``, which the manager sets up.

    It is provided both as ``PostgresMetrics`` and as a :class:`~fkit_core.Plugin`, so
    :class:`AsyncDatabaseProvider` hands it to the session manager: the manager's pools,
    transactions, errors and health are measured under ``prefix``. The arguments are
    ``PostgresMetrics``'; they are checked when the provider is built.

    Args:
        prefix: Metric name prefix (``<prefix>_postgres_pool_size``...).
        service_name: A constant ``service`` label.
        labels: More constant labels.
        registry: The prometheus_client registry; its global ``REGISTRY`` when None.
        buckets: Histogram buckets in seconds.
        scope: The scope it is provided in (APP).
        component: The dishka component to provide in (the default one when None).

    Raises:
        MissingDependencyError: fkit-metrics is not installed (``pip install
            fkit-dishka[metrics]``).
        ConfigurationError: A prefix, label or bucket list Prometheus would refuse.
    """

    def __init__(
        self,
        prefix: str = "fkit",
        service_name: str | None = None,
        labels: Mapping[str, str] | None = None,
        registry: "CollectorRegistry | None" = None,
        buckets: Sequence[float] | None = None,
        *,
        scope: BaseScope = Scope.APP,
        component: str | None = None,
    ) -> None:
        super().__init__(scope=scope, component=component)
        try:
            from fkit_metrics import PostgresMetrics
        except ImportError as exc:
            raise MissingDependencyError(
                "PrometheusPostgresMetricsProvider", "fkit-dishka[metrics]"
            ) from exc
        self.metrics: PostgresMetrics = PostgresMetrics(
            prefix, service_name, labels, registry, buckets
        )
        metrics = self.metrics

        def postgres_metrics() -> Any:
            return metrics

        self.provide(postgres_metrics, provides=AnyOf[PostgresMetrics, Plugin])

    def __repr__(self) -> str:
        return f"<PrometheusPostgresMetricsProvider prefix={self.metrics.prefix!r}>"
