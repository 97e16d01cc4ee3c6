"""The Unit of Work: transactions that hand out your repositories, with exact semantics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from fkit_core._isolation import IsolationLevelLike, parse_isolation_level
from fkit_core._nested import SessionTransaction, savepoint
from fkit_core._owner import WorkOwner, owner_of
from fkit_core._retry import RetryConfig, is_conflict, is_transient, schedule_retry
from fkit_core._transaction import ManagedTransaction, TransactionSpec

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from fkit_core._manager import AsyncSessionManager

__all__ = ["AsyncSQLAlchemyUnitOfWork", "AsyncSQLAlchemyUowTransaction", "TxT"]

R = TypeVar("R")


class AsyncSQLAlchemyUowTransaction:
    """What a Unit of Work block receives: the session, and your repositories.

    Subclass it and expose repositories as lazy properties over ``self.session``.

    Attributes:
        session: The session of this transaction.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def savepoint(self) -> SessionTransaction:
        """A savepoint: ``async with tx.savepoint():``; a failure inside rolls back only it."""
        return savepoint(self.session)

    async def flush(self) -> None:
        """Send pending changes to the database without committing."""
        await self.session.flush()


TxT = TypeVar("TxT", bound=AsyncSQLAlchemyUowTransaction)


# Whole-transaction retries when `run()` is given none: conflicts under SERIALIZABLE or
# deadlocks usually clear within a few attempts.
DEFAULT_RUN_RETRY = RetryConfig(max_attempts=5, initial_delay=0.02, max_delay=1.0)


class AsyncSQLAlchemyUnitOfWork(Generic[TxT]):
    """Runs work in transactions and hands each block a transaction object of type ``TxT``.

    Build it from a sessionmaker (``manager.session_maker`` or your own) or from a
    session manager; either way it reports on the manager's bus. ``transaction()``
    commits on success and rolls back on an exception or a cancellation; ``query()`` is
    read-only and never commits; ``managed_session()`` leaves commit and rollback to you;
    ``run()`` re-runs a whole function on serialization failures and deadlocks.

    Args:
        session_maker: An ``async_sessionmaker`` or an ``AsyncSessionManager``.
        transaction_factory: Builds your transaction class from a session.
        flush_before_commit: Flush before COMMIT, so a failing flush (nothing committed,
            safe to retry) is told apart from a failing COMMIT.
        retry: The default policy of :meth:`run`.
    """

    @overload
    def __init__(
        self: AsyncSQLAlchemyUnitOfWork[AsyncSQLAlchemyUowTransaction],
        session_maker: async_sessionmaker[AsyncSession] | AsyncSessionManager,
        *,
        flush_before_commit: bool = True,
        retry: RetryConfig | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        session_maker: async_sessionmaker[AsyncSession] | AsyncSessionManager,
        transaction_factory: Callable[[AsyncSession], TxT],
        flush_before_commit: bool = True,
        *,
        retry: RetryConfig | None = None,
    ) -> None: ...

    def __init__(
        self,
        session_maker: async_sessionmaker[AsyncSession] | AsyncSessionManager,
        transaction_factory: Callable[[AsyncSession], Any] = AsyncSQLAlchemyUowTransaction,
        flush_before_commit: bool = True,
        *,
        retry: RetryConfig | None = None,
    ) -> None:
        self._source = session_maker
        self._factory = transaction_factory
        self.flush_before_commit = flush_before_commit
        self.retry = retry or DEFAULT_RUN_RETRY

    @property
    def _is_manager(self) -> bool:
        return hasattr(self._source, "session_maker_for")

    def _owner(self) -> WorkOwner:
        if self._is_manager:
            return self._source  # type: ignore[return-value]
        return owner_of(self._source)  # type: ignore[arg-type]

    def _maker(self, replica: bool = False) -> async_sessionmaker[AsyncSession]:
        source: Any = self._source
        if self._is_manager:
            maker: async_sessionmaker[AsyncSession] = source.session_maker_for(
                "replica" if replica else "primary"
            )
            return maker
        owner = owner_of(source)
        if replica and hasattr(owner, "session_maker_for"):
            return owner.session_maker_for("replica")  # type: ignore[no-any-return]
        return source  # type: ignore[no-any-return]

    def _open(self, spec: TransactionSpec, *, replica: bool = False, pair: bool = False) -> Any:
        owner = self._owner()
        spec.local_settings()  # validates timeouts before any work starts
        factory = self._factory
        wrap = (lambda s: (factory(s), s)) if pair else factory
        reroute = None
        if replica:
            router = getattr(owner, "_router", None)
            reroute = router.reroute if router is not None else None
        return ManagedTransaction(owner, self._maker(replica)(), spec, wrap=wrap, reroute=reroute)

    def transaction(
        self,
        isolation_level: IsolationLevelLike | None = None,
        *,
        readonly: bool = False,
        deferrable: bool | None = None,
        statement_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> AbstractAsyncContextManager[TxT]:
        """A read-write transaction: ``async with uow.transaction() as tx:``.

        Commits when the block ends; rolls back on an exception or a cancellation. A
        failure at COMMIT is raised to the caller, translated and chained.

        Args:
            isolation_level: An :class:`IsolationLevel` or its name in any case.
            readonly: Start it READ ONLY.
            deferrable: Start it DEFERRABLE.
            statement_timeout: Seconds, for this transaction only.
            lock_timeout: Seconds, for this transaction only.
        """
        spec = TransactionSpec(
            "transaction",
            parse_isolation_level(isolation_level),
            readonly,
            deferrable,
            statement_timeout,
            lock_timeout,
            flush_before_commit=self.flush_before_commit,
        )
        result: AbstractAsyncContextManager[TxT] = self._open(spec)
        return result

    def query(
        self,
        isolation_level: IsolationLevelLike | None = None,
        *,
        replica: bool = False,
        deferrable: bool | None = None,
        statement_timeout: float | None = None,
    ) -> AbstractAsyncContextManager[TxT]:
        """A read-only transaction that never commits: ``async with uow.query() as qx:``.

        A write inside fails with :class:`~fkit_core.errors.ReadOnlyTransactionError`.

        Args:
            isolation_level: An :class:`IsolationLevel` or its name in any case.
            replica: Read from a replica (round robin; the primary when none is reachable).
            deferrable: Start it DEFERRABLE (with SERIALIZABLE: a safe snapshot, no conflicts).
            statement_timeout: Seconds, for this query only.
        """
        spec = TransactionSpec(
            "query",
            parse_isolation_level(isolation_level),
            True,
            deferrable,
            statement_timeout,
            commit_on_exit=False,
        )
        result: AbstractAsyncContextManager[TxT] = self._open(spec, replica=replica)
        return result

    def managed_session(
        self,
        isolation_level: IsolationLevelLike | None = None,
        *,
        statement_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> AbstractAsyncContextManager[tuple[TxT, AsyncSession]]:
        """``async with uow.managed_session() as (tx, session):`` with explicit commits.

        Call ``await session.commit()`` / ``rollback()`` yourself; whatever is neither
        committed nor rolled back when the block ends is rolled back.
        """
        spec = TransactionSpec(
            "managed_session",
            parse_isolation_level(isolation_level),
            statement_timeout=statement_timeout,
            lock_timeout=lock_timeout,
            commit_on_exit=False,
        )
        result: AbstractAsyncContextManager[tuple[TxT, AsyncSession]] = self._open(spec, pair=True)
        return result

    async def run(
        self,
        fn: Callable[[TxT], Awaitable[R]],
        *,
        isolation_level: IsolationLevelLike | None = None,
        readonly: bool = False,
        retry: RetryConfig | Literal[False] | None = None,
        statement_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> R:
        """Run ``fn(tx)`` in a transaction, re-running it whole on conflicts.

        On a serialization failure (40001), a deadlock (40P01) or a transient connection
        error, the transaction is rolled back and ``fn`` runs again in a fresh one, after
        the policy's backoff, emitting ``RetryScheduled``. Work whose COMMIT may have
        reached the server is never re-run: it raises
        :class:`~fkit_core.errors.CommitOutcomeUnknownError`.

        Args:
            fn: The whole unit of work; it may run more than once, so keep side effects
                outside the database idempotent or after it.
            isolation_level: Usually ``SERIALIZABLE`` for this pattern.
            readonly: Start the transactions READ ONLY.
            retry: A policy; the UoW's default when None; ``False`` for a single attempt.
            statement_timeout: Seconds, per attempt.
            lock_timeout: Seconds, per attempt.

        Returns:
            What ``fn`` returned on the attempt that committed.
        """
        policy = RetryConfig(max_attempts=1) if retry is False else (retry or self.retry)
        operation = getattr(fn, "__qualname__", repr(fn))
        attempt = 1
        while True:
            try:
                async with self.transaction(
                    isolation_level,
                    readonly=readonly,
                    statement_timeout=statement_timeout,
                    lock_timeout=lock_timeout,
                ) as tx:
                    return await fn(tx)
            except Exception as exc:
                if attempt >= policy.max_attempts or not (
                    is_conflict(exc) or is_transient(exc, policy)
                ):
                    raise
                await schedule_retry(self._owner(), policy, attempt, exc, operation)
                attempt += 1
