"""One session manager's tracing: its scope hook and the bus events turned into spans.

Installed once per manager, by the plugin or by a TracedAsyncUnitOfWork built on it:

- the scope hook opens a ``uow.*`` span around every transaction (when the plugin is set
  up) and a ``uow.savepoint`` span around every savepoint of a traced transaction;
- ``RetryScheduled`` becomes an event on the failed attempt's span;
- ``LockAcquired`` / ``LockNotAcquired`` become ``db.lock.wait`` child spans, timed from
  their ``wait_seconds``; ``LockReleased`` an event on the current span;
- ``HealthChecked`` becomes a ``db.health_check`` span timed from its latency.
"""

from __future__ import annotations

import time
import weakref
from contextlib import nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from fkit_core.events import (
    HealthChecked,
    LockAcquired,
    LockNotAcquired,
    LockReleased,
    RetryScheduled,
)
from fkit_otel._pending import pending_end
from fkit_otel._semconv import (
    ENGINE_NAME,
    ERROR_TYPE,
    LOCK_ACQUIRED,
    LOCK_KEY,
    LOCK_SCOPE,
    LOCK_SHARED,
    MANAGER_NAME,
    SQLSTATE,
)
from fkit_otel._tracing import ACTIVE_TRACING, SESSION_TRACING, Tracing, bind_engine

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from sqlalchemy.engine import Engine

    from fkit_core import AsyncSessionManager, TransactionScope

    Unsubscribe = Callable[[], None]

__all__ = ["CLAIMED", "ManagerTracing", "install", "uninstall"]

CLAIMED: ContextVar[bool] = ContextVar("fkit_otel_claimed", default=False)
"""True while a TracedAsyncUnitOfWork opens a transaction it already has a span for."""

_NULL: AbstractContextManager[object] = nullcontext()
_NANOS = 1_000_000_000


class ManagerTracing:
    """The hook and subscribers of one manager; ``tracing`` is the plugin's, if set up."""

    def __init__(self, manager: AsyncSessionManager) -> None:
        # No reference to the manager itself: this object is the value of a weak mapping
        # keyed by the manager, and a reference back would keep the manager alive.
        self.tracing: Tracing | None = None
        # Engines the plugin instrumented, weakly: an engine refers to its manager.
        self.engines: list[weakref.ref[Engine]] = []
        self._engine_subscription: Unsubscribe | None = None
        bus = manager.bus
        self._removers = [
            bus.add_scope_hook(self.scope),
            bus.subscribe(RetryScheduled, self.on_retry),
            bus.subscribe(LockAcquired, self.on_lock),
            bus.subscribe(LockNotAcquired, self.on_lock),
            bus.subscribe(LockReleased, self.on_release),
            bus.subscribe(HealthChecked, self.on_health),
        ]

    def on_engine(self, unsubscribe: Unsubscribe) -> None:
        """Keep the plugin's ``EngineCreated`` subscription, replacing an earlier one."""
        self.forget_engines()
        self._engine_subscription = unsubscribe

    def forget_engines(self) -> None:
        """Drop the plugin's ``EngineCreated`` subscription, if any."""
        if self._engine_subscription is not None:
            self._engine_subscription()
            self._engine_subscription = None

    def remove(self) -> None:
        """Take the hook and the subscriptions off the bus."""
        self.forget_engines()
        for remove in self._removers:
            remove()
        self._removers.clear()

    def _active(self) -> Tracing | None:
        found: Any = context.get_value(ACTIVE_TRACING)
        return found if isinstance(found, Tracing) else self.tracing

    def scope(self, scope: TransactionScope) -> AbstractContextManager[object]:
        """The scope hook: a span around the transaction body, or nothing."""
        session = scope.session
        if scope.nested:
            tracing = session.info.get(SESSION_TRACING) or self._active()
        elif CLAIMED.get():
            return _NULL
        else:
            tracing = self.tracing
        if tracing is None or not tracing.may_record():
            return _NULL
        span = tracing.start_transaction(
            scope.kind,
            scope.isolation_level,
            scope.readonly,
            engine_name=scope.engine_name,
            manager_name=scope.manager,
            engine=bind_engine(session),
        )
        if scope.kind == "managed_session":
            span.watch_commits(session)
        return span

    def on_retry(self, event: RetryScheduled) -> None:
        """Record the retry on the attempt that failed (or else on the current span)."""
        attributes: dict[str, Any] = {
            "fkit.retry.attempt": event.attempt,
            "fkit.retry.delay": event.delay,
            "fkit.retry.reason": event.reason,
            "fkit.retry.operation": event.operation,
        }
        pending = pending_end()
        if pending is not None:
            if pending.sqlstate:
                attributes[SQLSTATE] = pending.sqlstate
            pending.span.add_event("fkit.retry", attributes)
            pending.finish()
            return
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event("fkit.retry", attributes)

    def on_lock(self, event: LockAcquired | LockNotAcquired) -> None:
        """A ``db.lock.wait`` child span covering the wait that just ended."""
        tracing = self._active()
        if tracing is None or not tracing.may_record():
            return
        end = time.time_ns()
        attributes = tracing.base_attributes(None)
        attributes.update(
            {
                LOCK_KEY: event.key,
                LOCK_SCOPE: event.scope,
                LOCK_SHARED: event.shared,
                LOCK_ACQUIRED: isinstance(event, LockAcquired),
                MANAGER_NAME: event.manager,
            }
        )
        span = tracing.tracer.start_span(
            "db.lock.wait",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=end - max(int(event.wait_seconds * _NANOS), 0),
        )
        span.end(end_time=end)

    def on_release(self, event: LockReleased) -> None:
        """An ``fkit.lock.released`` event on the current span."""
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "fkit.lock.released",
                {
                    LOCK_KEY: event.key,
                    LOCK_SCOPE: event.scope,
                    LOCK_SHARED: event.shared,
                    "fkit.lock.held_seconds": event.held_seconds,
                },
            )

    def on_health(self, event: HealthChecked) -> None:
        """A ``db.health_check`` span covering the check that just finished."""
        tracing = self._active()
        if tracing is None or not tracing.may_record():
            return
        end = time.time_ns()
        attributes = tracing.base_attributes(None)
        attributes.update(
            {
                ENGINE_NAME: event.engine_name,
                MANAGER_NAME: event.manager,
                "fkit.health.healthy": event.healthy,
            }
        )
        if event.error:
            attributes[ERROR_TYPE] = event.error
        span = tracing.tracer.start_span(
            "db.health_check",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=end - max(int(event.latency * _NANOS), 0),
        )
        if not event.healthy:
            span.set_status(Status(StatusCode.ERROR, event.error or "unhealthy"))
        span.end(end_time=end)


_INSTALLED: weakref.WeakKeyDictionary[AsyncSessionManager, ManagerTracing] = (
    weakref.WeakKeyDictionary()
)


def install(manager: AsyncSessionManager) -> ManagerTracing:
    """The manager's tracing, hooked into its bus on first use."""
    found = _INSTALLED.get(manager)
    if found is None:
        found = ManagerTracing(manager)
        _INSTALLED[manager] = found
    return found


def uninstall(manager: AsyncSessionManager) -> ManagerTracing | None:
    """Remove the manager's tracing from its bus; returns it, if it was installed."""
    found = _INSTALLED.pop(manager, None)
    if found is not None:
        found.remove()
    return found
