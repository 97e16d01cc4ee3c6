"""fkit-dishka: dishka providers for fkit's session manager, sessions and Units of Work.

``AsyncDatabaseProvider`` gives the settings, the started session manager, its engine and
sessionmaker (APP scope) and a session in a transaction (REQUEST scope);
``AsyncUnitOfWorkProvider`` gives your Unit of Work and its transaction type;
``PrometheusPostgresMetricsProvider`` (extra ``metrics``) measures the manager with
fkit-metrics, which is imported only when that provider is built.
"""

from fkit_dishka._database import AsyncDatabaseProvider
from fkit_dishka._metrics import PrometheusPostgresMetricsProvider
from fkit_dishka._scope import ScopedTransaction
from fkit_dishka._uow import AsyncUnitOfWorkProvider
from fkit_dishka._version import VERSION as __version__

__all__ = [
    "AsyncDatabaseProvider",
    "AsyncUnitOfWorkProvider",
    "PrometheusPostgresMetricsProvider",
    "ScopedTransaction",
    "__version__",
]
