"""Transactions on a session you already hold: a transaction if none is open, else a savepoint."""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING

from fkit_core._bus import TransactionScope
from fkit_core._transaction import ENGINE_INFO_KEY, owner_of, raise_translated
from fkit_core._translate import translate_error
from fkit_core.errors import CommitOutcomeUnknownError, ConnectionLostError
from fkit_core.events import (
    TransactionEnded,
    TransactionKind,
    TransactionOutcome,
    TransactionStarted,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

__all__ = ["SessionTransaction", "get_transaction", "savepoint"]

logger = logging.getLogger("fkit_core.transaction")


class SessionTransaction:
    """``async with`` a transaction on a given session; a savepoint when one is open.

    Committing a savepoint releases it; rolling it back returns the session to the state
    it had before the block, and the outer transaction goes on. The session is not closed:
    it belongs to the caller.
    """

    __slots__ = (
        "_force_nested",
        "_nested",
        "_owner",
        "_scope",
        "_started",
        "_token",
        "_tx",
        "session",
    )

    def __init__(self, session: AsyncSession, *, force_nested: bool = False) -> None:
        self.session = session
        self._force_nested = force_nested
        self._owner = owner_of(session)
        self._tx: AsyncSessionTransaction | None = None
        self._nested = False
        self._scope: AbstractContextManager[None] | None = None
        self._started = 0.0
        self._token: object | None = None

    @property
    def nested(self) -> bool:
        """Whether this block is a savepoint inside an open transaction."""
        return self._nested

    @property
    def _engine_name(self) -> str:
        name: str = self.session.info.get(ENGINE_INFO_KEY, "primary")
        return name

    @property
    def _kind(self) -> TransactionKind:
        return "savepoint" if self._nested else "transaction"

    async def __aenter__(self) -> AsyncSession:
        session = self.session
        self._nested = self._force_nested or session.in_transaction()
        if not self._nested:
            self._token = self._owner._enter_work()
        self._started = perf_counter()
        try:
            self._tx = await (session.begin_nested() if self._nested else session.begin())
        except BaseException as exc:
            self._owner._leave_work(self._token)
            raise_translated(self._owner, exc, self._engine_name)
            raise
        bus = self._owner.bus
        kind = self._kind
        if bus.wants(TransactionStarted):
            bus.emit(
                TransactionStarted(
                    self._owner.name, self._engine_name, kind, None, False, self._nested
                )
            )
        if bus.has_scope_hooks:
            self._scope = bus.scope(
                TransactionScope(
                    self._owner.name, self._engine_name, kind, None, False, self._nested, session
                )
            )
            self._scope.__enter__()
        return session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx = self._tx
        assert tx is not None
        if exc is not None:
            await self._rollback(tx)
            self._end(exc, "cancelled" if isinstance(exc, asyncio.CancelledError) else "error")
            raise_translated(self._owner, exc, self._engine_name)
            return
        try:
            await tx.commit()
        except BaseException as commit_exc:
            await self._rollback(tx)
            self._end(commit_exc, "error")
            translated = translate_error(commit_exc)
            if not self._nested and isinstance(translated, ConnectionLostError):
                raise CommitOutcomeUnknownError(
                    "the connection was lost during COMMIT, so the transaction may or may not "
                    f"have been committed ({translated}); check before re-running the work",
                    sqlstate=translated.sqlstate,
                ) from commit_exc
            raise_translated(self._owner, commit_exc, self._engine_name)
            raise
        self._end(None, "commit")

    async def _rollback(self, tx: AsyncSessionTransaction) -> None:
        try:
            # Also when inactive: a failed flush leaves the savepoint deactivated, and only
            # rolling it back returns the session to the outer transaction.
            await tx.rollback()
        except BaseException:
            logger.warning("rolling back a %s failed", self._kind, exc_info=True)

    def _end(self, exc: BaseException | None, outcome: TransactionOutcome) -> None:
        if self._scope is not None:
            scope, self._scope = self._scope, None
            if exc is None:
                scope.__exit__(None, None, None)
            else:
                scope.__exit__(type(exc), exc, exc.__traceback__)
        owner = self._owner
        if not self._nested:
            owner._leave_work(self._token)
        if owner.bus.wants(TransactionEnded):
            owner.bus.emit(
                TransactionEnded(
                    owner.name,
                    self._engine_name,
                    self._kind,
                    None,
                    False,
                    self._nested,
                    outcome,
                    perf_counter() - self._started,
                    type(exc).__name__ if exc is not None else None,
                )
            )


def get_transaction(session: AsyncSession) -> SessionTransaction:
    """Open a transaction on ``session``, or a savepoint when one is already open.

    Service functions that each wrap their work in ``async with get_transaction(session)``
    compose: called alone they commit, called inside another transaction they become a
    savepoint, and a failure rolls back only their own part.

    Args:
        session: A session you hold (from ``manager.get_session()``, a request dependency,
            a Unit of Work transaction, ...).

    Returns:
        An async context manager that yields the same session.
    """
    return SessionTransaction(session)


def savepoint(session: AsyncSession) -> SessionTransaction:
    """A savepoint on ``session`` (``SAVEPOINT`` ... ``RELEASE``/``ROLLBACK TO``).

    Opens the outer transaction first if none is open.
    """
    return SessionTransaction(session, force_nested=True)
