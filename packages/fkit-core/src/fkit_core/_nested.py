"""Transactions on a session you already hold: a transaction if none is open, else a savepoint."""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING

from fkit_core._owner import ENGINE_INFO_KEY, owner_of
from fkit_core._txevents import (
    enter_transaction,
    exit_transaction,
    raise_commit_failure,
    raise_translated,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

    from fkit_core.events import (
        TransactionKind,
        TransactionOutcome,
    )

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
            self._token = self._owner.enter_work()
        self._started = perf_counter()
        try:
            self._tx = await (session.begin_nested() if self._nested else session.begin())
        except BaseException as exc:
            self._owner.leave_work(self._token)
            raise_translated(self._owner, exc, self._engine_name)
            raise
        self._scope = enter_transaction(
            self._owner, session, self._engine_name, self._kind, None, False, self._nested
        )
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
            if self._nested:  # RELEASE SAVEPOINT: the outer COMMIT is still to come
                raise_translated(self._owner, commit_exc, self._engine_name)
                raise
            raise_commit_failure(self._owner, commit_exc, self._engine_name)
        self._end(None, "commit")

    async def _rollback(self, tx: AsyncSessionTransaction) -> None:
        try:
            # Also when inactive: a failed flush leaves the savepoint deactivated, and only
            # rolling it back returns the session to the outer transaction.
            await tx.rollback()
        except BaseException:
            logger.warning("rolling back a %s failed", self._kind, exc_info=True)

    def _end(self, exc: BaseException | None, outcome: TransactionOutcome) -> None:
        scope, self._scope = self._scope, None
        if not self._nested:
            self._owner.leave_work(self._token)
        exit_transaction(
            self._owner,
            scope,
            exc,
            self._started,
            outcome,
            self._engine_name,
            self._kind,
            None,
            False,
            self._nested,
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
