"""The transaction runner every fkit transaction goes through (manager and Unit of Work).

It owns the exact semantics: begin with the requested characteristics, commit on
success, roll back on an exception or a cancellation, raise a failed COMMIT to the
caller, translate driver errors, emit bus events, run scope hooks, and count the work
as in flight so that ``close()`` can drain it.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from fkit_core._bus import TransactionScope
from fkit_core._isolation import IsolationLevel
from fkit_core._translate import translate_error
from fkit_core.errors import CommitOutcomeUnknownError, ConnectionLostError
from fkit_core.events import (
    DatabaseErrorOccurred,
    TransactionEnded,
    TransactionKind,
    TransactionOutcome,
    TransactionStarted,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core._manager import AsyncSessionManager

__all__ = ["ManagedTransaction", "raise_translated", "transaction_options"]

logger = logging.getLogger("fkit_core.transaction")


# SQLAlchemy's asyncpg dialect refuses READ UNCOMMITTED as an isolation_level option, so
# that level is set by the transaction's first statement instead, on every driver alike.
_READ_UNCOMMITTED = text("SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")


def transaction_options(
    level: IsolationLevel | None, readonly: bool, deferrable: bool | None
) -> dict[str, Any] | None:
    """SQLAlchemy execution options that begin a transaction with these characteristics.

    Returns None when there is nothing to set, so the common path costs nothing.
    """
    if (
        (level is None or level is IsolationLevel.READ_UNCOMMITTED)
        and not readonly
        and deferrable is None
    ):
        return None
    options: dict[str, Any] = {}
    if level is not None and level is not IsolationLevel.READ_UNCOMMITTED:
        options["isolation_level"] = level.value
    if readonly:
        options["postgresql_readonly"] = True
    if deferrable is not None:
        options["postgresql_deferrable"] = deferrable
    return options


def raise_translated(manager: AsyncSessionManager, exc: BaseException, engine_name: str) -> None:
    """Raise the fkit translation of ``exc`` chained to it, emitting ``DatabaseErrorOccurred``.

    Returns normally when ``exc`` is not a database error, so the caller re-raises it.
    """
    translated = translate_error(exc)
    if translated is None:
        return
    bus = manager.bus
    if bus.wants(DatabaseErrorOccurred):
        sqlstate = getattr(translated, "sqlstate", None)
        bus.emit(
            DatabaseErrorOccurred(
                manager.name,
                engine_name,
                type(translated).__name__,
                sqlstate,
                sqlstate[:2] if sqlstate else None,
            )
        )
    raise translated from exc


class ManagedTransaction:
    """An async context manager around one session's transaction; yields the session.

    Not constructed directly: use ``manager.get_transaction()`` or the Unit of Work.
    """

    __slots__ = (
        "_engine_name",
        "_isolation",
        "_kind",
        "_manager",
        "_options",
        "_readonly",
        "_scope",
        "_started",
        "_token",
        "commit_on_exit",
        "session",
    )

    def __init__(
        self,
        manager: AsyncSessionManager,
        session: AsyncSession,
        *,
        kind: TransactionKind,
        engine_name: str,
        isolation_level: IsolationLevel | None,
        readonly: bool,
        execution_options: dict[str, Any] | None,
        commit_on_exit: bool = True,
    ) -> None:
        self._manager = manager
        self.session = session
        self._kind: TransactionKind = kind
        self._engine_name = engine_name
        self._isolation = isolation_level
        self._readonly = readonly
        self._options = execution_options
        self.commit_on_exit = commit_on_exit
        self._scope: AbstractContextManager[None] | None = None
        self._started = 0.0
        self._token: object | None = None

    async def __aenter__(self) -> AsyncSession:
        manager = self._manager
        self._token = manager._enter_work()
        self._started = perf_counter()
        bus = manager.bus
        try:
            if self._options:
                # Characteristics must be set when the connection is procured, before BEGIN;
                # SQLAlchemy resets them when the connection returns to the pool.
                await self.session.connection(execution_options=self._options)
            if self._isolation is IsolationLevel.READ_UNCOMMITTED:
                await self.session.execute(_READ_UNCOMMITTED)
        except BaseException as exc:
            await self._finish(exc, "error" if isinstance(exc, Exception) else "cancelled")
            raise_translated(manager, exc, self._engine_name)
            raise
        iso = self._isolation.value if self._isolation is not None else None
        if bus.wants(TransactionStarted):
            bus.emit(
                TransactionStarted(
                    manager.name, self._engine_name, self._kind, iso, self._readonly, False
                )
            )
        if bus.has_scope_hooks:
            self._scope = bus.scope(
                TransactionScope(
                    manager.name,
                    self._engine_name,
                    self._kind,
                    iso,
                    self._readonly,
                    False,
                    self.session,
                )
            )
            self._scope.__enter__()
        return self.session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        if exc is None:
            if not self.commit_on_exit:
                await self._finish(None, "rollback")
                return
            try:
                await session.commit()
            except BaseException as commit_exc:
                await self._finish(commit_exc, "error")
                translated = translate_error(commit_exc)
                if isinstance(translated, ConnectionLostError):
                    # The COMMIT may have reached the server: never let anyone re-run it blindly.
                    raise CommitOutcomeUnknownError(
                        "the connection was lost during COMMIT, so the transaction may or may not "
                        f"have been committed ({translated}); check before re-running the work",
                        sqlstate=translated.sqlstate,
                    ) from commit_exc
                raise_translated(self._manager, commit_exc, self._engine_name)
                raise
            await self._finish(None, "commit")
            return
        await self._finish(exc, "cancelled" if isinstance(exc, asyncio.CancelledError) else "error")
        raise_translated(self._manager, exc, self._engine_name)

    async def _finish(self, exc: BaseException | None, outcome: TransactionOutcome) -> None:
        """Roll back unless committed, close the session, exit hooks, emit the end event."""
        session = self.session
        try:
            if outcome != "commit":
                await self._rollback_quietly()
            await session.close()
        finally:
            if self._scope is not None:
                scope, self._scope = self._scope, None
                if exc is None:
                    scope.__exit__(None, None, None)
                else:
                    scope.__exit__(type(exc), exc, exc.__traceback__)
            manager = self._manager
            manager._leave_work(self._token)
            bus = manager.bus
            if bus.wants(TransactionEnded):
                bus.emit(
                    TransactionEnded(
                        manager.name,
                        self._engine_name,
                        self._kind,
                        self._isolation.value if self._isolation is not None else None,
                        self._readonly,
                        False,
                        outcome,
                        perf_counter() - self._started,
                        type(exc).__name__ if exc is not None else None,
                    )
                )

    async def _rollback_quietly(self) -> None:
        # The rollback runs while an exception (maybe a cancellation) is already on its way;
        # its own failure must not replace that exception. A connection that cannot roll
        # back is invalidated so the pool never hands it out again.
        session = self.session
        try:
            await session.rollback()
        except BaseException as exc:
            logger.warning("rollback failed; invalidating the connection", exc_info=True)
            try:
                await session.invalidate()
            except Exception:
                logger.debug("invalidate after a failed rollback failed too", exc_info=True)
            if isinstance(exc, asyncio.CancelledError):
                raise  # a second cancellation during rollback: honour it
