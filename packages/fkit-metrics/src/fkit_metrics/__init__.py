"""fkit-metrics: Prometheus metrics for fkit session managers (the ``prometheus`` plugin).

Importing this package is cheap: prometheus_client is imported when the first session
manager starts with the plugin, or when :func:`metrics_app` is called.
"""

from fkit_metrics._app import ASGIApp, metrics_app
from fkit_metrics._plugin import DEFAULT_BUCKETS, MultiprocessMode, PostgresMetrics
from fkit_metrics._version import VERSION as __version__

__all__ = [
    "DEFAULT_BUCKETS",
    "ASGIApp",
    "MultiprocessMode",
    "PostgresMetrics",
    "__version__",
    "metrics_app",
]
