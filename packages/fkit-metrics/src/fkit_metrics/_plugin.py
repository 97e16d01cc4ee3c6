"""``PostgresMetrics``: the ``prometheus`` plugin object and its (cheap) configuration.

Nothing here imports prometheus_client or SQLAlchemy at module level: the entry point
names this class, and plugin discovery must stay cheap. The metric families are created
(or found again) on the first ``setup()``, in :mod:`fkit_metrics._families`.
"""

from __future__ import annotations

import itertools
import os
import re
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, get_args

from fkit_core.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from prometheus_client import CollectorRegistry

    from fkit_core import AsyncSessionManager
    from fkit_metrics._wiring import ManagerWiring

__all__ = ["DEFAULT_BUCKETS", "MultiprocessMode", "PostgresMetrics", "Spec"]

DEFAULT_BUCKETS: Final[tuple[float, ...]] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Histogram buckets in seconds. Finer below 10 ms than prometheus_client's defaults,
because a healthy pool hands out connections in well under a millisecond; up to 30 s,
SQLAlchemy's default pool timeout."""

MultiprocessMode = Literal["livesum", "sum", "liveall", "all", "livemax", "max", "livemin", "min"]
"""How prometheus_client's multiprocess mode combines the pool gauges of several processes."""

# Labels fkit_metrics puts on its own series; constant labels must not reuse them.
RESERVED_LABELS: Final = frozenset(
    {"manager", "engine", "kind", "outcome", "sqlstate_class", "error", "reason", "scope"}
    | {"le", "quantile"}  # prometheus_client's histogram and summary labels
)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_PREFIX = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_MULTIPROC_MODES: Final = frozenset(get_args(MultiprocessMode))


@dataclass(frozen=True, slots=True)
class Spec:
    """What must match for two ``PostgresMetrics`` to share one registry and prefix.

    Label *values* may differ (one service label per instance, say); label *names*,
    buckets and the multiprocess choice are fixed once the families exist.
    """

    prefix: str
    constant_labels: tuple[str, ...]
    buckets: tuple[float, ...]
    multiprocess: bool
    multiprocess_mode: MultiprocessMode


def multiprocess_dir() -> str | None:
    """The directory of prometheus_client's multiprocess mode, if it is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class PostgresMetrics:
    """Prometheus metrics for fkit session managers: the ``prometheus`` plugin.

    Installed, the plugin is set up on every session manager with the defaults; pass a
    configured instance in ``plugins=[...]`` or as
    ``create_async_session_manager(config, metrics=...)`` to replace it. One instance may
    serve several managers: their series are told apart by the ``manager`` and ``engine``
    labels. Instances that share a registry and prefix share the metric families instead
    of failing with prometheus_client's "Duplicated timeseries".

    Constructing one is cheap and imports nothing; the metrics are created in the
    registry when the first manager starts with it.

    Args:
        prefix: Metric name prefix: ``<prefix>_postgres_pool_size`` and so on; an empty
            string gives ``postgres_pool_size``.
        service_name: Adds a constant ``service`` label with this value.
        labels: More constant labels, the same on every series of this instance.
        registry: Where to register; None is prometheus_client's global ``REGISTRY``.
        buckets: Histogram buckets in seconds for every duration histogram;
            :data:`DEFAULT_BUCKETS` when None.
        multiprocess_mode: How the pool gauges of several processes combine when
            ``PROMETHEUS_MULTIPROC_DIR`` is set (``"livesum"``: the live processes' sum).

    Raises:
        ConfigurationError: A prefix, label name, label value or bucket list that
            Prometheus would refuse, or a constant label that collides with fkit's own.
    """

    name = "prometheus"
    requires_core = ">=0.1,<0.2"

    def __init__(
        self,
        prefix: str = "fkit",
        service_name: str | None = None,
        labels: Mapping[str, str] | None = None,
        registry: CollectorRegistry | None = None,
        buckets: Sequence[float] | None = None,
        *,
        multiprocess_mode: MultiprocessMode = "livesum",
    ) -> None:
        if prefix and not _PREFIX.match(prefix):
            raise ConfigurationError(
                f"prefix {prefix!r} is not a valid Prometheus metric name start; use letters, "
                "digits, '_' and ':' (not starting with a digit), e.g. 'myapp'"
            )
        constant = dict(labels or {})
        if service_name is not None:
            if "service" in constant:
                raise ConfigurationError(
                    "both service_name and labels['service'] are given; pass one of them"
                )
            constant["service"] = service_name
        for key, value in constant.items():
            if not isinstance(key, str) or not _LABEL_NAME.match(key) or key.startswith("__"):
                raise ConfigurationError(
                    f"label name {key!r} is not valid in Prometheus; use letters, digits and "
                    "'_', not starting with a digit or '__'"
                )
            if key in RESERVED_LABELS:
                raise ConfigurationError(
                    f"label {key!r} is set by fkit_metrics itself; choose another name "
                    f"(reserved: {', '.join(sorted(RESERVED_LABELS))})"
                )
            if not isinstance(value, str):
                raise ConfigurationError(
                    f"label {key!r} has the value {value!r} of type {type(value).__name__}; "
                    "label values must be strings"
                )
        self.prefix = prefix
        self.service_name = service_name
        self.labels: dict[str, str] = dict(labels or {})
        self.buckets = _check_buckets(buckets)
        if multiprocess_mode not in _MULTIPROC_MODES:
            raise ConfigurationError(
                f"multiprocess_mode {multiprocess_mode!r} is not one of "
                f"{', '.join(sorted(_MULTIPROC_MODES))}"
            )
        self.multiprocess_mode: MultiprocessMode = multiprocess_mode
        self._registry = registry
        # service first, then the other constant labels in name order.
        names = sorted(constant, key=lambda k: (k != "service", k))
        self._constant_names = tuple(names)
        self._constant_values = tuple(constant[k] for k in names)
        self._wirings: dict[int, ManagerWiring] = {}

    def __repr__(self) -> str:
        return (
            f"PostgresMetrics(prefix={self.prefix!r}, service_name={self.service_name!r}, "
            f"labels={self.labels!r})"
        )

    @property
    def registry(self) -> CollectorRegistry:
        """The registry the metrics are registered in (the global one by default)."""
        if self._registry is not None:
            return self._registry
        from prometheus_client import REGISTRY

        return REGISTRY

    @property
    def constant_labels(self) -> dict[str, str]:
        """Every constant label of this instance, ``service`` included."""
        return dict(zip(self._constant_names, self._constant_values, strict=True))

    def setup(self, manager: AsyncSessionManager) -> None:
        """Create or reuse the metric families and subscribe to ``manager``'s bus.

        Called by the session manager before its engines exist. Calling it again for
        the same manager (a start that is retried after a failure) rewires it.

        Raises:
            ConfigurationError: The registry already holds these metric names with other
                label names or buckets, or registered by something else.
        """
        from fkit_metrics._families import metric_set_for
        from fkit_metrics._wiring import ManagerWiring

        spec = Spec(
            self.prefix,
            self._constant_names,
            self.buckets,
            multiprocess_dir() is not None,
            self.multiprocess_mode,
        )
        families = metric_set_for(self.registry, spec)
        self._forget(id(manager))
        self._wirings[id(manager)] = ManagerWiring(families, manager, self._constant_values)
        # The installed plugin lives as long as the process; a manager dropped without
        # close() must not stay wired (its id may be reused by a later manager).
        weakref.finalize(manager, self._forget, id(manager))

    def teardown(self, manager: AsyncSessionManager) -> None:
        """Drop ``manager``'s pool gauges and health series and unsubscribe (on close)."""
        self._forget(id(manager))

    def _forget(self, manager_id: int) -> None:
        wiring = self._wirings.pop(manager_id, None)
        if wiring is not None:
            wiring.close()


def _check_buckets(buckets: Sequence[float] | None) -> tuple[float, ...]:
    if buckets is None:
        return DEFAULT_BUCKETS
    try:
        values = tuple(float(b) for b in buckets)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"buckets must be numbers of seconds, got {buckets!r}") from exc
    if not values or any(a >= b for a, b in itertools.pairwise(values)):
        raise ConfigurationError(
            f"buckets must be a non-empty, strictly increasing list of seconds, got {buckets!r}"
        )
    return values
