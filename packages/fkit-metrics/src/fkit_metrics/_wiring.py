"""One manager wired to the metric families: bus subscribers and SQLAlchemy pool events.

Every handler runs on the hot path of the emitter (bus subscribers are sync), so label
children are looked up once per label combination and cached; the combinations are
bounded (engines x kinds x outcomes, error classes, lock scopes).
"""

from __future__ import annotations

import contextlib
import re
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from fkit_core.events import (
    DatabaseErrorOccurred,
    EngineCreated,
    EngineRole,
    HealthChecked,
    LockAcquired,
    LockNotAcquired,
    RetryScheduled,
    TransactionEnded,
)
from fkit_metrics._pool import hold_timers, pool_status, timed_pool_class

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.pool import Pool

    from fkit_core import AsyncSessionManager
    from fkit_metrics._families import MetricSet

__all__ = ["ManagerWiring", "bounded"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,79}$")
_SQLSTATE_CLASS = re.compile(r"^(?:[0-9A-Z]{2}|none)$")


def bounded(value: str) -> str:
    """``value`` when it looks like a class name, else ``"other"``.

    Labels must have bounded cardinality and never carry message text (which may hold
    data or SQL); events promise class names here, and this keeps that promise safe.
    """
    return value if _NAME.match(value) else "other"


class ManagerWiring:
    """Subscribes one manager's bus and engines to a :class:`MetricSet`; ``close()`` undoes it."""

    def __init__(
        self, metrics: MetricSet, manager: AsyncSessionManager, constant: tuple[str, ...]
    ) -> None:
        self._metrics = metrics
        self._manager_name = manager.name
        self._manager_id = id(manager)
        # Weak: the plugin object may outlive managers that are never closed.
        self._manager = weakref.ref(manager)
        self._constant = constant
        self._engines: list[str] = []
        self._tx: dict[tuple[str, str, str], tuple[Callable[[], None], Callable[[float], None]]]
        self._tx = {}
        self._errors: dict[tuple[str, str | None, str], Callable[[], None]] = {}
        bus = manager.bus
        self._unsubscribe = [
            bus.add_engine_options_hook(self._engine_options),
            bus.subscribe(EngineCreated, self._engine_created),
            bus.subscribe(TransactionEnded, self._transaction_ended),
            bus.subscribe(DatabaseErrorOccurred, self._database_error),
            bus.subscribe(RetryScheduled, self._retry),
            bus.subscribe(LockAcquired, self._lock_acquired),
            bus.subscribe(LockNotAcquired, self._lock_not_acquired),
            bus.subscribe(HealthChecked, self._health_checked),
        ]

    def _labels(self, engine_name: str) -> tuple[str, ...]:
        return (self._manager_name, engine_name, *self._constant)

    # -- pools ------------------------------------------------------------------------

    def _engine_options(self, engine_name: str, role: EngineRole, options: dict[str, Any]) -> None:
        base = options.get("poolclass")
        if not isinstance(base, type) or "pool" in options:
            return  # a ready-made pool instance: nothing to subclass
        labels = self._labels(engine_name)
        metrics = self._metrics
        options["poolclass"] = timed_pool_class(
            base,
            metrics.checkout.labels(*labels).observe,
            metrics.timeouts.labels(*labels).inc,
            self._refresher(labels) if metrics.pool_gauges is not None else None,
        )

    def _refresher(self, labels: tuple[str, ...]) -> Callable[[Pool], None]:
        assert self._metrics.pool_gauges is not None
        setters = [gauge.labels(*labels).set for gauge in self._metrics.pool_gauges]

        def refresh(pool: Pool) -> None:
            status = pool_status(pool)
            if status is not None:
                for set_value, value in zip(setters, status, strict=True):
                    set_value(value)

        return refresh

    def _engine_created(self, e: EngineCreated) -> None:
        labels = self._labels(e.engine_name)
        sync_engine = e.engine.sync_engine
        on_checkout, on_checkin = hold_timers(self._metrics.held.labels(*labels).observe)
        event.listen(sync_engine, "checkout", on_checkout)
        event.listen(sync_engine, "checkin", on_checkin)
        self._engines.append(e.engine_name)
        manager = self._manager()
        collector = self._metrics.pool_collector
        if collector is not None and manager is not None:
            collector.add(manager, e.engine_name, labels, sync_engine)
        elif self._metrics.pool_gauges is not None:
            self._refresher(labels)(sync_engine.pool)

    # -- bus events -------------------------------------------------------------------

    def _transaction_ended(self, e: TransactionEnded) -> None:
        key = (e.engine_name, e.kind, e.outcome)
        pair = self._tx.get(key)
        if pair is None:
            labels = self._labels(e.engine_name)
            pair = (
                self._metrics.transactions.labels(*labels, e.kind, e.outcome).inc,
                self._metrics.transaction_duration.labels(*labels, e.kind).observe,
            )
            self._tx[key] = pair
        pair[0]()
        pair[1](e.duration)

    def _database_error(self, e: DatabaseErrorOccurred) -> None:
        key = (e.engine_name, e.sqlstate_class, e.error)
        inc = self._errors.get(key)
        if inc is None:
            sqlstate_class = e.sqlstate_class or "none"
            if not _SQLSTATE_CLASS.match(sqlstate_class):
                sqlstate_class = "other"
            inc = self._metrics.errors.labels(
                *self._labels(e.engine_name), sqlstate_class, bounded(e.error)
            ).inc
            self._errors[key] = inc
        inc()

    def _retry(self, e: RetryScheduled) -> None:
        self._metrics.retries.labels(*self._labels(e.engine_name), bounded(e.reason)).inc()

    def _lock_acquired(self, e: LockAcquired) -> None:
        self._metrics.lock_wait.labels(*self._labels(e.engine_name), e.scope).observe(
            e.wait_seconds
        )

    def _lock_not_acquired(self, e: LockNotAcquired) -> None:
        labels = self._labels(e.engine_name)
        self._metrics.lock_wait.labels(*labels, e.scope).observe(e.wait_seconds)
        self._metrics.locks_not_acquired.labels(*labels, e.scope).inc()

    def _health_checked(self, e: HealthChecked) -> None:
        labels = self._labels(e.engine_name)
        self._metrics.health_up.labels(*labels).set(1 if e.healthy else 0)
        self._metrics.healthcheck_duration.labels(*labels).observe(e.latency)

    # -- teardown ---------------------------------------------------------------------

    def close(self) -> None:
        """Unsubscribe and make the manager's pool and health series disappear."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        metrics = self._metrics
        if metrics.pool_collector is not None:
            metrics.pool_collector.remove_manager(self._manager_id)
            for engine_name in self._engines:
                # Older prometheus_client versions raise KeyError for an unknown series.
                with contextlib.suppress(KeyError):
                    metrics.health_up.remove(*self._labels(engine_name))
        elif metrics.pool_gauges is not None:
            # Multiprocess files cannot drop a series; a closed pool holds nothing.
            for engine_name in self._engines:
                for gauge in metrics.pool_gauges:
                    gauge.labels(*self._labels(engine_name)).set(0)
        self._engines = []
