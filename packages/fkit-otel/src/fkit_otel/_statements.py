"""Statement spans from SQLAlchemy's cursor events, on SQLAlchemy 2.0 and 2.1 alike.

fkit does not use ``opentelemetry-instrumentation-sqlalchemy``: its instrumentor refuses
SQLAlchemy 2.1 (it declares ``sqlalchemy<2.1``), its ``instruments`` extra would
downgrade SQLAlchemy, and its instrumentor is a process-wide singleton that instruments
only the first engine it is given. The listeners here follow the same database
conventions, for every engine they are given, once per engine.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from fkit_otel._redact import record_error
from fkit_otel._semconv import SYSTEM, operation_of
from fkit_otel._tracing import Tracing, engine_info

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider
    from sqlalchemy.engine import Connection, ExceptionContext
    from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext

__all__ = ["instrument_sqlalchemy", "is_instrumented", "uninstrument_sqlalchemy"]

_SPAN_ATTRIBUTE = "_fkit_otel_span"
_CONNECTION_KEY = "fkit_otel.span"


class _StatementListeners:
    """The three cursor-event listeners of one engine."""

    __slots__ = (
        "__weakref__",
        "_armed",
        "_base",
        "_engine",
        "_names",
        "_namespace",
        "_tracer",
        "_tracing",
    )

    def __init__(self, tracing: Tracing, engine: Engine) -> None:
        self._tracing = tracing
        self._tracer = tracing.tracer
        info = engine_info(engine)
        names = tracing.conventions
        base = tracing.base_attributes(info.namespace)
        if info.address:
            base.update(dict.fromkeys(names.address, info.address))
        if info.port:
            base.update(dict.fromkeys(names.port, info.port))
        self._base = base
        self._names = names
        # Span names per operation: "SELECT postgres", or "postgresql" when neither is known.
        self._namespace = info.namespace
        # Weak: the registry below is keyed weakly by the engine, and a strong reference
        # from its value would keep every instrumented engine alive for good.
        self._engine = weakref.ref(engine)
        self._armed = False

    def _name(self, operation: str | None) -> str:
        parts = [p for p in (operation, self._namespace) if p]
        return " ".join(parts) if parts else SYSTEM

    def before(
        self,
        conn: Connection,
        cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        if not self._tracing.may_record():
            return
        # The statement text only: SQLAlchemy sends values separately as bound parameters,
        # and `parameters` is never looked at.
        operation = operation_of(statement) if isinstance(statement, str) else None
        attributes = dict(self._base)
        names = self._names
        for key in names.statement:
            attributes[key] = statement
        if operation and "db.operation.name" in names.operation:
            attributes["db.operation.name"] = operation
        span = self._tracer.start_span(
            self._name(operation), kind=SpanKind.CLIENT, attributes=attributes
        )
        _store(conn, context, span)

    def after(
        self,
        conn: Connection,
        cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        if not self._tracing.may_record():
            return  # nothing was started (it can only turn from False to True)
        span = _take(conn, context)
        if span is not None:
            span.end()

    def error(self, exception_context: ExceptionContext) -> None:
        span = _take(exception_context.connection, exception_context.execution_context)
        if span is None:
            return
        exc = exception_context.original_exception
        if span.is_recording():
            span.set_status(Status(StatusCode.ERROR, record_error(span, exc)))
        span.end()

    def listen(self) -> None:
        """Listen now if spans can be recorded; otherwise once they can.

        Any engine-level listener makes SQLAlchemy dispatch events on every connection
        and statement, which costs a transaction a measurable share of its time. While
        the provider can only make no-op spans (no SDK set up yet) there is nothing to
        record, so only a pool ``checkout`` listener (pool events cost next to nothing)
        watches for the global provider to be set, and arms the statement listeners
        before the first statement of the connection that sees it.
        """
        engine = self._engine()
        if engine is None:
            return
        if self._tracing.may_record():
            self._arm()
        elif not self._tracing.fixed:
            event.listen(engine, "checkout", self._on_checkout)

    def _on_checkout(self, *_args: object) -> None:
        if not self._armed and self._tracing.may_record():
            self._arm()

    def _arm(self) -> None:
        engine = self._engine()
        with _LOCK:
            if self._armed or engine is None:
                return
            self._armed = True
            event.listen(engine, "before_cursor_execute", self.before)
            event.listen(engine, "after_cursor_execute", self.after)
            event.listen(engine, "handle_error", self.error)

    def remove(self) -> None:
        engine = self._engine()
        if engine is None:
            return
        if event.contains(engine, "checkout", self._on_checkout):
            event.remove(engine, "checkout", self._on_checkout)
        with _LOCK:
            if self._armed:
                self._armed = False
                event.remove(engine, "before_cursor_execute", self.before)
                event.remove(engine, "after_cursor_execute", self.after)
                event.remove(engine, "handle_error", self.error)


def _store(conn: Connection | None, context: ExecutionContext | None, span: Span) -> None:
    if context is not None:
        setattr(context, _SPAN_ATTRIBUTE, span)
    elif conn is not None:
        # Statements run without an execution context (some defaults) use the connection:
        # one statement at a time runs on a connection.
        stale = conn.info.pop(_CONNECTION_KEY, None)
        if stale is not None:
            stale.end()
        conn.info[_CONNECTION_KEY] = span


def _take(conn: Connection | None, context: ExecutionContext | None) -> Span | None:
    if context is not None:
        span: Span | None = getattr(context, _SPAN_ATTRIBUTE, None)
        if span is not None:
            setattr(context, _SPAN_ATTRIBUTE, None)
            return span
    if conn is not None and not conn.closed:
        return conn.info.pop(_CONNECTION_KEY, None)  # type: ignore[no-any-return]
    return None


_INSTRUMENTED: weakref.WeakKeyDictionary[Engine, _StatementListeners] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _sync_engine(engine: AsyncEngine | Engine) -> Engine:
    if isinstance(engine, AsyncEngine):
        return engine.sync_engine
    if isinstance(engine, Engine):
        return engine
    raise TypeError(
        "instrument_sqlalchemy() expects a SQLAlchemy AsyncEngine or Engine, "
        f"got {type(engine).__name__}"
    )


def instrument_sqlalchemy(
    engine: AsyncEngine | Engine,
    service_name: str | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> bool:
    """Trace every statement ``engine`` runs, as a child of the span current at the time.

    Works with SQLAlchemy 2.0 and 2.1, for every engine it is given (primary and replicas
    alike); a second call for the same engine changes nothing. Each statement span is a
    ``CLIENT`` span named ``"<OPERATION> <database>"`` (``SELECT postgres``) with
    ``db.system``, ``db.statement`` (the SQL text with its placeholders, never the
    parameter values), ``db.name``, ``net.peer.name`` and ``net.peer.port``, or their
    stable names under ``OTEL_SEMCONV_STABILITY_OPT_IN=database``. A failed statement
    records the error class and SQLSTATE, not the driver's message.

    Args:
        engine: An ``AsyncEngine`` (as users hold it) or a sync ``Engine``.
        service_name: Recorded as ``service.name`` on every statement span.
        tracer_provider: Where spans go; the global provider when None.

    Returns:
        True if this call instrumented the engine, False if it already was.

    Raises:
        TypeError: ``engine`` is not a SQLAlchemy engine.
    """
    sync = _sync_engine(engine)
    with _LOCK:
        if sync in _INSTRUMENTED:
            return False
        listeners = _StatementListeners(Tracing(tracer_provider, service_name), sync)
        _INSTRUMENTED[sync] = listeners
    listeners.listen()
    return True


def uninstrument_sqlalchemy(engine: AsyncEngine | Engine) -> bool:
    """Stop tracing ``engine``'s statements.

    Returns:
        True if it was instrumented.
    """
    sync = _sync_engine(engine)
    with _LOCK:
        listeners = _INSTRUMENTED.pop(sync, None)
    if listeners is None:
        return False
    listeners.remove()
    return True


def is_instrumented(engine: AsyncEngine | Engine) -> bool:
    """Whether :func:`instrument_sqlalchemy` instrumented ``engine``."""
    return _sync_engine(engine) in _INSTRUMENTED
