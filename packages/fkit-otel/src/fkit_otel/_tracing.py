"""Transaction spans: made current while the body runs, ended with the outcome.

:class:`Tracing` is one configuration (a tracer, the attribute names, a service name);
:class:`TransactionSpan` is one transaction or savepoint span. Both the plugin's scope
hook and :class:`~fkit_otel.TracedAsyncUnitOfWork` use them, so a transaction looks the
same in a trace whichever of the two traced it.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from fkit_core.extending import engine_name_of
from fkit_otel._pending import end_soon, is_retryable
from fkit_otel._redact import describe, record_error
from fkit_otel._semconv import (
    ENGINE_NAME,
    ERROR_TYPE,
    ISOLATION_LEVEL,
    MANAGER_NAME,
    OUTCOME,
    READONLY,
    SERVICE_NAME,
    SYSTEM,
    Conventions,
)
from fkit_otel._version import VERSION

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core.events import TransactionKind, TransactionOutcome

__all__ = [
    "ACTIVE_TRACING",
    "SESSION_TRACING",
    "EngineInfo",
    "Tracing",
    "TransactionSpan",
    "bind_engine",
    "engine_info",
]

TRACER_NAME = "fkit_otel"

# Providers whose tracers only ever hand out non-recording spans. The proxy is what the
# API returns while no provider has been set.
_NO_OP = (trace.NoOpTracerProvider, trace.ProxyTracerProvider)

ACTIVE_TRACING = context.create_key("fkit_otel.tracing")
"""Context key: the :class:`Tracing` of the transaction span that is current, so lock and
retry events inside it are recorded by the same tracer."""

SESSION_TRACING = "fkit_otel.tracing"
"""``session.info`` key: a TracedAsyncUnitOfWork's tracing, for savepoints in its sessions."""


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What spans say about an engine's server: never its user or password."""

    namespace: str | None
    address: str | None
    port: int | None


_ENGINES: weakref.WeakKeyDictionary[Engine, EngineInfo] = weakref.WeakKeyDictionary()


def engine_info(engine: Engine) -> EngineInfo:
    """The database name, host and port of ``engine``'s URL (cached per engine)."""
    found = _ENGINES.get(engine)
    if found is None:
        url = engine.url
        found = EngineInfo(url.database or None, url.host or None, url.port)
        _ENGINES[engine] = found
    return found


class Tracing:
    """A tracer and the attribute names to use with it.

    Args:
        tracer_provider: Where spans go; the global provider when None.
        service_name: Recorded as ``service.name`` on every span when given.
        conventions: The attribute names; read from ``OTEL_SEMCONV_STABILITY_OPT_IN`` when None.
    """

    __slots__ = ("_cache", "_records", "conventions", "service_name", "tracer")

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        service_name: str | None = None,
        conventions: Conventions | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(TRACER_NAME, VERSION, tracer_provider)
        self.service_name = service_name
        self.conventions = conventions or Conventions.from_environment()
        self._cache: dict[tuple[Any, ...], dict[str, Any]] = {}
        # Known for good for a provider given here; for the global one, True once it is set.
        self._records: bool | None = (
            None if tracer_provider is None else not isinstance(tracer_provider, _NO_OP)
        )

    @property
    def fixed(self) -> bool:
        """Whether :meth:`may_record` can no longer change (a provider was given, or set)."""
        return self._records is not None

    def may_record(self) -> bool:
        """False while spans could only be no-op spans (no SDK provider set, or a no-op one).

        Hot paths check this first, so an installed but unconfigured plugin costs next to
        nothing. The global provider is looked up each time until one is set, so a
        provider set after start-up is picked up.
        """
        records = self._records
        if records is not None:
            return records
        if isinstance(trace.get_tracer_provider(), _NO_OP):
            return False
        self._records = True  # the global provider can be set only once
        return True

    def base_attributes(self, namespace: str | None) -> dict[str, Any]:
        """``db.system`` (and ``db.name``) in the chosen names, plus ``service.name``."""
        names = self.conventions
        attributes: dict[str, Any] = dict.fromkeys(names.system, SYSTEM)
        if namespace:
            attributes.update(dict.fromkeys(names.namespace, namespace))
        if self.service_name:
            attributes[SERVICE_NAME] = self.service_name
        return attributes

    def transaction_attributes(
        self,
        kind: TransactionKind,
        isolation_level: str | None,
        readonly: bool,
        engine_name: str | None,
        manager_name: str | None,
        namespace: str | None,
    ) -> dict[str, Any]:
        """The attributes a transaction span starts with (cached: they take few values)."""
        key = (kind, isolation_level, readonly, engine_name, manager_name, namespace)
        found = self._cache.get(key)
        if found is None:
            found = self.base_attributes(namespace)
            found.update(dict.fromkeys(self.conventions.operation, kind))
            if isolation_level:
                found[ISOLATION_LEVEL] = isolation_level
            found[READONLY] = readonly
            if engine_name:
                found[ENGINE_NAME] = engine_name
            if manager_name:
                found[MANAGER_NAME] = manager_name
            if len(self._cache) < 1024:
                self._cache[key] = found
        return found

    def start_transaction(
        self,
        kind: TransactionKind,
        isolation_level: str | None,
        readonly: bool,
        *,
        engine_name: str | None = None,
        manager_name: str | None = None,
        engine: Engine | None = None,
    ) -> TransactionSpan:
        """Start ``uow.<kind>`` as a child of the current span and make it current."""
        namespace = engine_info(engine).namespace if engine is not None else None
        attributes = self.transaction_attributes(
            kind, isolation_level, readonly, engine_name, manager_name, namespace
        )
        return TransactionSpan(self, f"uow.{kind}", attributes, kind)


def bind_engine(session: AsyncSession) -> Engine | None:
    """The engine a session is bound to, if it has a single one."""
    bind: Any = session.sync_session.bind
    if bind is None:
        return None
    return getattr(bind, "engine", bind)  # type: ignore[no-any-return]


class TransactionSpan:
    """One transaction or savepoint span, current from creation until :meth:`finish`.

    Also a context manager, which is what a bus scope hook returns.
    """

    __slots__ = ("_committed", "_ctx", "_token", "_tracing", "kind", "span")

    def __init__(
        self, tracing: Tracing, name: str, attributes: dict[str, Any], kind: TransactionKind
    ) -> None:
        self.kind = kind
        self._tracing = tracing
        self.span = span = tracing.tracer.start_span(
            name, kind=SpanKind.INTERNAL, attributes=attributes
        )
        self._committed: list[bool] | None = None
        self._token: object | None = None
        self._ctx: context.Context | None = None
        if not span.get_span_context().is_valid:
            # The no-op tracer's span: making it current would only hide the caller's span.
            return
        parent = context.get_current()
        if context.get_value(ACTIVE_TRACING, parent) is not tracing:
            parent = context.set_value(ACTIVE_TRACING, tracing, parent)
        self._ctx = trace.set_span_in_context(span, parent)
        self._token = context.attach(self._ctx)

    def describe_session(self, session: AsyncSession) -> None:
        """Add the engine facts known only once the session exists (replica reads reroute)."""
        span = self.span
        if not span.is_recording():
            return
        span.set_attribute(ENGINE_NAME, engine_name_of(session))
        engine = bind_engine(session)
        namespace = engine_info(engine).namespace if engine is not None else None
        if namespace:
            for key in self._tracing.conventions.namespace:
                span.set_attribute(key, namespace)

    def watch_commits(self, session: AsyncSession) -> None:
        """Tell a managed session's commit from its rollback by watching ``after_commit``."""
        from sqlalchemy import event

        committed: list[bool] = []
        self._committed = committed
        event.listen(session.sync_session, "after_commit", lambda _s: committed.append(True))

    def _detach(self) -> None:
        token, self._token = self._token, None
        # Detaching only where we attached: a context manager entered in one task and left
        # in another (a fixture's setup and teardown, say) must not make OpenTelemetry log
        # a failed detach, nor pop a context that is not ours.
        if token is not None and context.get_current() is self._ctx:
            context.detach(token)  # type: ignore[arg-type]

    def finish(self, exc: BaseException | None) -> TransactionOutcome:
        """Leave the span's context, set outcome and status, and end it."""
        self._detach()
        span = self.span
        outcome: TransactionOutcome
        if exc is None:
            if self.kind in ("transaction", "savepoint"):
                outcome = "commit"
            else:
                outcome = "commit" if self._committed else "rollback"
        elif isinstance(exc, asyncio.CancelledError):
            outcome = "cancelled"
        else:
            outcome = "error"
        if not span.is_recording():
            span.end()
            return outcome
        span.set_attribute(OUTCOME, outcome)
        if outcome == "cancelled":
            span.set_attribute(ERROR_TYPE, "asyncio.CancelledError")
            span.set_status(Status(StatusCode.ERROR, "cancelled"))
        elif exc is not None:
            span.set_status(Status(StatusCode.ERROR, record_error(span, exc)))
            if self.kind != "savepoint" and is_retryable(exc):
                end_soon(span, describe(exc)[2])
                return outcome
        span.end()
        return outcome

    def __enter__(self) -> TransactionSpan:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.finish(exc)
