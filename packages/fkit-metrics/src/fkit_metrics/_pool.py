"""Pool metrics: status read at scrape time, and checkout waits timed in the pool itself.

**Pool status.** SQLAlchemy's queue pools report ``size()``, ``checkedout()``,
``overflow()`` and ``checkedin()``; :class:`PoolCollector` reads them for every live
engine when Prometheus scrapes, so the gauges cost nothing between scrapes and are never
stale.

**Checkout wait.** SQLAlchemy's pool events have ``checkout`` (after a connection was
handed out) but no "before checkout", and ``do_connect`` fires only when a *new*
connection is opened, so no pair of events brackets the wait for a free connection.
The one place that does is ``Pool.connect()``, the public method every engine calls to
get a connection. :func:`timed_pool_class` subclasses the engine's pool class and times
``connect()``; an engine-options hook passes the subclass as ``poolclass`` before the
engine is created. A subclass, rather than wrapping the method on the pool instance,
survives ``engine.dispose()``, which replaces the pool with ``pool.recreate()`` (that is
``self.__class__(...)``), and needs no private attribute. The pool timeout is counted
there too, where SQLAlchemy raises it. Hold times come from the public ``checkout`` and
``checkin`` pool events.

**Multiprocess mode.** A custom collector cannot be read across processes, so there the
pool gauges are set after every checkout and every return instead. SQLAlchemy has no
event after a connection is back in the queue (``checkin`` fires just before), so the
subclass also extends ``Pool._return_conn``, the one private method this module touches,
and only in that mode.
"""

from __future__ import annotations

import threading
import weakref
from time import perf_counter
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import ConnectionPoolEntry, Pool, PoolProxiedConnection

    from fkit_core import AsyncSessionManager

__all__ = ["PoolCollector", "hold_timers", "pool_gauge_specs", "pool_status", "timed_pool_class"]

_CHECKED_OUT_AT = "fkit_metrics.checked_out_at"

_GAUGES = (
    ("pool_size", "Connections the pool keeps open at most, overflow not counted (pool_size)"),
    ("pool_checked_out", "Connections currently checked out of the pool (in use)"),
    ("pool_overflow", "Connections open beyond pool_size (overflow in use)"),
    ("pool_checked_in", "Idle connections waiting in the pool"),
)


def pool_gauge_specs() -> tuple[tuple[str, str], ...]:
    """(name suffix, help) of the four pool gauges, in the order of :func:`pool_status`."""
    return _GAUGES


def pool_status(pool: Pool) -> tuple[int, int, int, int] | None:
    """(size, checked out, overflow, checked in) of a queue pool; None for other pools.

    SQLAlchemy's ``overflow()`` starts at ``-pool_size`` and counts up as connections
    are opened; only the part above zero is overflow in the everyday sense, so that is
    what is reported. ``NullPool`` and ``StaticPool`` keep no such counts.
    """
    if not isinstance(pool, QueuePool):
        return None
    return (pool.size(), pool.checkedout(), max(pool.overflow(), 0), pool.checkedin())


class _Entry:
    __slots__ = ("engine", "labels", "manager")

    def __init__(
        self, labels: tuple[str, ...], manager: AsyncSessionManager, engine: Engine
    ) -> None:
        self.labels = labels
        self.manager = weakref.ref(manager)
        self.engine = weakref.ref(engine)


class PoolCollector:
    """A prometheus_client custom collector yielding the pool gauges of live engines.

    Engines are added when their manager creates them and removed when it closes; an
    engine whose manager is closed or gone is skipped. Engines with identical labels
    (two managers of the same name) are summed, so the exposition stays valid.
    """

    def __init__(self, prefix: str, label_names: tuple[str, ...]) -> None:
        self._names = tuple((prefix + name, doc) for name, doc in _GAUGES)
        self._label_names = list(label_names)
        self._entries: dict[tuple[int, str], _Entry] = {}
        self._lock = threading.Lock()

    def add(
        self,
        manager: AsyncSessionManager,
        engine_name: str,
        labels: tuple[str, ...],
        engine: Engine,
    ) -> None:
        """Report ``engine``'s pool under ``labels`` from now on."""
        with self._lock:
            self._entries[(id(manager), engine_name)] = _Entry(labels, manager, engine)

    def remove_manager(self, manager_id: int) -> None:
        """Stop reporting every engine of the manager whose ``id()`` is ``manager_id``."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == manager_id]:
                del self._entries[key]

    def _families(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, doc, labels=self._label_names) for name, doc in self._names]

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families without samples, so the registry can check the names are free."""
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read every live engine's pool status (called by the registry at scrape time)."""
        with self._lock:
            items = list(self._entries.items())
        totals: dict[tuple[str, ...], list[int]] = {}
        dead = []
        for key, entry in items:
            manager, engine = entry.manager(), entry.engine()
            if manager is None or engine is None:
                dead.append(key)
                continue
            if manager.state == "closed":
                continue
            status = pool_status(engine.pool)
            if status is None:
                continue
            total = totals.setdefault(entry.labels, [0, 0, 0, 0])
            for i, value in enumerate(status):
                total[i] += value
        if dead:
            with self._lock:
                for key in dead:
                    self._entries.pop(key, None)
        families = self._families()
        for labels, values in totals.items():
            for family, value in zip(families, values, strict=True):
                family.add_metric(list(labels), value)
        yield from families


def timed_pool_class(
    base: type[Pool],
    observe_wait: Callable[[float], None],
    count_timeout: Callable[[], None],
    refresh: Callable[[Pool], None] | None,
) -> type[Pool]:
    """A subclass of ``base`` that times ``connect()`` and counts pool timeouts.

    Args:
        base: The pool class the engine would have used.
        observe_wait: Receives the seconds each checkout waited, timeouts included.
        count_timeout: Called when a checkout gives up because the pool stayed full.
        refresh: In multiprocess mode, called with the pool after every checkout and
            return so that the pool gauges follow; None otherwise.
    """

    class FkitTimedPool(base):  # type: ignore[valid-type,misc]
        def connect(self) -> PoolProxiedConnection:
            started = perf_counter()
            try:
                connection: PoolProxiedConnection = super().connect()
            except sa_exc.TimeoutError:
                observe_wait(perf_counter() - started)
                count_timeout()
                raise
            observe_wait(perf_counter() - started)
            if refresh is not None:
                refresh(self)
            return connection

        if refresh is not None:
            # SQLAlchemy's ``checkin`` event fires *before* the connection is back in the
            # queue, so status read there is one off; refresh after the return instead.
            def _return_conn(self, record: ConnectionPoolEntry) -> None:
                super()._return_conn(record)
                refresh(self)

    FkitTimedPool.__name__ = FkitTimedPool.__qualname__ = f"FkitTimed{base.__name__}"
    return FkitTimedPool


def hold_timers(
    observe_held: Callable[[float], None],
) -> tuple[
    Callable[[object, ConnectionPoolEntry, object], None],
    Callable[[object, ConnectionPoolEntry], None],
]:
    """Listeners for SQLAlchemy's ``checkout`` and ``checkin`` pool events timing each hold.

    The connection record outlives each checkout; its ``info`` dict carries the checkout
    time to the matching checkin.
    """

    def on_checkout(_dbapi: object, record: ConnectionPoolEntry, _proxy: object) -> None:
        record.info[_CHECKED_OUT_AT] = perf_counter()

    def on_checkin(_dbapi: object, record: ConnectionPoolEntry) -> None:
        started = record.info.pop(_CHECKED_OUT_AT, None)
        if started is not None:
            observe_held(perf_counter() - started)

    return on_checkout, on_checkin
