"""``TracedAsyncUnitOfWork``: a Unit of Work whose transactions are spans, plugin or not."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from fkit_core import (
    AsyncSessionManager,
    AsyncSQLAlchemyUnitOfWork,
    AsyncSQLAlchemyUowTransaction,
    parse_isolation_level,
)
from fkit_core.extending import manager_of
from fkit_otel._manager import CLAIMED, install
from fkit_otel._tracing import SESSION_TRACING, Tracing

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from opentelemetry.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from fkit_core import IsolationLevelLike, RetryConfig
    from fkit_core.events import TransactionKind
    from fkit_otel._tracing import TransactionSpan

__all__ = ["TracedAsyncUnitOfWork"]

T = TypeVar("T")
TxT = TypeVar("TxT", bound=AsyncSQLAlchemyUowTransaction)


class _TracedBlock(AbstractAsyncContextManager[T], Generic[T]):
    """Wraps a Unit of Work block in a span that is current from before BEGIN to after COMMIT."""

    __slots__ = ("_inner", "_isolation", "_kind", "_manager", "_readonly", "_span", "_tracing")

    def __init__(
        self,
        tracing: Tracing,
        inner: AbstractAsyncContextManager[T],
        kind: TransactionKind,
        isolation_level: str | None,
        readonly: bool,
        manager_name: str | None,
    ) -> None:
        self._tracing = tracing
        self._inner = inner
        self._kind: TransactionKind = kind
        self._isolation = isolation_level
        self._readonly = readonly
        self._manager = manager_name
        self._span: TransactionSpan | None = None

    async def __aenter__(self) -> T:
        span = self._tracing.start_transaction(
            self._kind, self._isolation, self._readonly, manager_name=self._manager
        )
        self._span = span
        # The manager's scope hook (the plugin's) must not open a second span for it.
        claim = CLAIMED.set(True)
        try:
            value = await self._inner.__aenter__()
        except BaseException as exc:
            span.finish(exc)
            raise
        finally:
            CLAIMED.reset(claim)
        session: AsyncSession = value[1] if isinstance(value, tuple) else value.session  # type: ignore[attr-defined]
        span.describe_session(session)
        # Savepoints in this session get their spans from this tracer, plugin or not.
        session.info[SESSION_TRACING] = self._tracing
        if self._kind == "managed_session":
            span.watch_commits(session)
        return value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        span = self._span
        assert span is not None, "__aexit__ without __aenter__"
        try:
            suppress = await self._inner.__aexit__(exc_type, exc, tb)
        except BaseException as raised:
            # The inner block raises the translated error (what the caller sees).
            span.finish(raised)
            raise
        span.finish(None if suppress else exc)
        return suppress


class TracedAsyncUnitOfWork(AsyncSQLAlchemyUnitOfWork[TxT]):
    """A Unit of Work whose transactions are OpenTelemetry spans, with or without the plugin.

    ``transaction()``, ``query()`` and ``managed_session()`` open ``uow.transaction``,
    ``uow.query`` and ``uow.managed_session`` spans that are current from before BEGIN
    until after COMMIT or ROLLBACK, so statement spans are their children. ``run()``
    retries are events on the failed attempt's span. Built on a session manager (or its
    sessionmaker), savepoints get ``uow.savepoint`` child spans and lock waits
    ``db.lock.wait`` child spans too. When the ``otel`` plugin is also set up, these
    blocks keep their own span and the plugin adds no second one.

    Args:
        session_maker: An ``async_sessionmaker`` or an ``AsyncSessionManager``.
        transaction_factory: Builds your transaction class from a session.
        flush_before_commit: Flush before COMMIT (see the base class).
        retry: The default policy of ``run()``.
        service_name: Recorded as ``service.name`` on every span.
        tracer_provider: Where spans go; the global provider when None.
    """

    @overload
    def __init__(
        self: TracedAsyncUnitOfWork[AsyncSQLAlchemyUowTransaction],
        session_maker: async_sessionmaker[AsyncSession] | AsyncSessionManager,
        *,
        flush_before_commit: bool = True,
        retry: RetryConfig | None = None,
        service_name: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        session_maker: async_sessionmaker[AsyncSession] | AsyncSessionManager,
        transaction_factory: Callable[[AsyncSession], TxT],
        flush_before_commit: bool = True,
        *,
        retry: RetryConfig | None = None,
        service_name: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None: ...

    def __init__(
        self,
        session_maker: async_sessionmaker[AsyncSession] | AsyncSessionManager,
        transaction_factory: Callable[[AsyncSession], Any] = AsyncSQLAlchemyUowTransaction,
        flush_before_commit: bool = True,
        *,
        retry: RetryConfig | None = None,
        service_name: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        super().__init__(session_maker, transaction_factory, flush_before_commit, retry=retry)
        self.service_name = service_name
        self._tracing = Tracing(tracer_provider, service_name)
        manager = manager_of(session_maker)
        self._manager_name = manager.name if manager is not None else None
        if manager is not None:
            install(manager)  # savepoint spans, retry events, lock spans

    def _traced(
        self,
        inner: AbstractAsyncContextManager[T],
        kind: TransactionKind,
        isolation_level: IsolationLevelLike | None,
        readonly: bool,
    ) -> AbstractAsyncContextManager[T]:
        level = parse_isolation_level(isolation_level)
        return _TracedBlock(
            self._tracing,
            inner,
            kind,
            level.value if level is not None else None,
            readonly,
            self._manager_name,
        )

    def transaction(
        self,
        isolation_level: IsolationLevelLike | None = None,
        *,
        readonly: bool = False,
        deferrable: bool | None = None,
        statement_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> AbstractAsyncContextManager[TxT]:
        """A read-write transaction in a ``uow.transaction`` span (see the base class)."""
        inner = super().transaction(
            isolation_level,
            readonly=readonly,
            deferrable=deferrable,
            statement_timeout=statement_timeout,
            lock_timeout=lock_timeout,
        )
        return self._traced(inner, "transaction", isolation_level, readonly)

    def query(
        self,
        isolation_level: IsolationLevelLike | None = None,
        *,
        replica: bool = False,
        deferrable: bool | None = None,
        statement_timeout: float | None = None,
    ) -> AbstractAsyncContextManager[TxT]:
        """A read-only transaction in a ``uow.query`` span (see the base class)."""
        inner = super().query(
            isolation_level,
            replica=replica,
            deferrable=deferrable,
            statement_timeout=statement_timeout,
        )
        return self._traced(inner, "query", isolation_level, True)

    def managed_session(
        self,
        isolation_level: IsolationLevelLike | None = None,
        *,
        statement_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> AbstractAsyncContextManager[tuple[TxT, AsyncSession]]:
        """Explicit commits in a ``uow.managed_session`` span (see the base class)."""
        inner = super().managed_session(
            isolation_level, statement_timeout=statement_timeout, lock_timeout=lock_timeout
        )
        return self._traced(inner, "managed_session", isolation_level, False)
