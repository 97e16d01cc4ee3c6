"""fkit-di: dependency-injector containers for fkit's session manager and Units of Work.

``DatabaseContainer`` holds the session manager as its only async ``Resource`` (started
by ``init_resources()``, closed by ``shutdown_resources()``) and derives the engine,
sessionmaker and Units of Work from it; ``PrometheusMetricsContainer`` (extra ``metrics``)
provides fkit-metrics' plugin, imported only when it is first provided.
``shutdown_resources(container)`` stops resources in dependency order even when they
are linked through other providers, which dependency-injector's own method does not.
"""

from fkit_di._database import DatabaseContainer
from fkit_di._metrics import PrometheusMetricsContainer
from fkit_di._shutdown import shutdown_resources
from fkit_di._version import VERSION as __version__

__all__ = [
    "DatabaseContainer",
    "PrometheusMetricsContainer",
    "__version__",
    "shutdown_resources",
]
