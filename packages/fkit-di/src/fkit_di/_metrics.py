"""``PrometheusMetricsContainer``: fkit-metrics' plugin as a provider, when installed.

fkit-metrics is an optional dependency (the ``metrics`` extra): it is imported when
``postgres_metrics`` is first called, never when ``fkit_di`` is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from fkit_core.errors import MissingDependencyError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from fkit_metrics import PostgresMetrics

__all__ = ["PrometheusMetricsContainer"]


def _application_name(settings: object) -> str | None:
    if settings is None:
        return None
    if isinstance(settings, Mapping):
        query = settings.get("query") or {}
        name = query.get("application_name") if isinstance(query, Mapping) else None
        return name if isinstance(name, str) else None
    query = getattr(settings, "query", None)
    name = getattr(query, "application_name", None)
    return name if isinstance(name, str) else None


def build_postgres_metrics(
    postgres_settings: object = None,
    *,
    prefix: str = "fkit",
    service_name: str | None = None,
    labels: Mapping[str, str] | None = None,
    registry: CollectorRegistry | None = None,
    buckets: Sequence[float] | None = None,
) -> PostgresMetrics:
    """A ``PostgresMetrics``; the ``service`` label defaults to the settings' application name.

    Raises:
        MissingDependencyError: fkit-metrics is not installed.
    """
    try:
        from fkit_metrics import PostgresMetrics
    except ImportError as exc:
        raise MissingDependencyError("PrometheusMetricsContainer", "fkit-di[metrics]") from exc
    if service_name is None:
        service_name = _application_name(postgres_settings)
    return PostgresMetrics(prefix, service_name, labels, registry, buckets)


class PrometheusMetricsContainer(containers.DeclarativeContainer):
    """dependency-injector container for fkit-metrics' ``PostgresMetrics`` plugin.

    Pass its ``postgres_metrics`` to ``DatabaseContainer(metrics=...)`` and the manager
    sets it up. Calling ``postgres_metrics`` without fkit-metrics installed raises
    :class:`~fkit_core.errors.MissingDependencyError` naming ``fkit-di[metrics]``; the
    container itself (and a ``DatabaseContainer`` not given it) works without it.

    Attributes:
        postgres_settings: The database settings (``BasePostgresConfig`` or a mapping);
            their ``query.application_name``, when set, is the default ``service`` label.
        default_prefix: The metric name prefix (``<prefix>_postgres_pool_size``...).
        service_name: A constant ``service`` label (overrides the application name).
        labels: More constant labels.
        registry: The prometheus_client registry; its global ``REGISTRY`` when None.
        buckets: Histogram buckets in seconds.
        postgres_metrics: The ``PostgresMetrics`` plugin (a Singleton).
    """

    postgres_settings: providers.Provider[Any] = providers.Object(None)
    default_prefix: providers.Provider[Any] = providers.Object("fkit")
    service_name: providers.Provider[Any] = providers.Object(None)
    labels: providers.Provider[Any] = providers.Object(None)
    registry: providers.Provider[Any] = providers.Object(None)
    buckets: providers.Provider[Any] = providers.Object(None)

    postgres_metrics: providers.Provider[Any] = providers.Singleton(
        build_postgres_metrics,
        postgres_settings,
        prefix=default_prefix,
        service_name=service_name,
        labels=labels,
        registry=registry,
        buckets=buckets,
    )
