"""fkit-dishka: dishka providers for fkit's session manager, sessions and Units of Work.

``AsyncDatabaseProvider`` gives the settings, the started session manager, its engine and
sessionmaker (APP scope) and a session in a transaction (REQUEST scope);
``AsyncUnitOfWorkProvider`` gives your Unit of Work and its transaction type;
``PrometheusPostgresMetricsProvider`` (extra ``metrics``) measures the manager with
fkit-metrics, which is imported only when that provider is built.
``TransactionMiddleware`` ends a web request's transactions before its response starts:
committed for a success, rolled back for an error response.
"""

from fkit_dishka._database import AsyncDatabaseProvider
from fkit_dishka._metrics import PrometheusPostgresMetricsProvider
from fkit_dishka._middleware import ErrorResponse, TransactionMiddleware, commit_below_400
from fkit_dishka._scope import ScopedTransaction
from fkit_dishka._uow import AsyncUnitOfWorkProvider
from fkit_dishka._version import VERSION as __version__

__all__ = [
    "AsyncDatabaseProvider",
    "AsyncUnitOfWorkProvider",
    "ErrorResponse",
    "PrometheusPostgresMetricsProvider",
    "ScopedTransaction",
    "TransactionMiddleware",
    "__version__",
    "commit_below_400",
]
