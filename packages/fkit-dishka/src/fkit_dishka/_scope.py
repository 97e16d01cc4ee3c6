"""Ending a transaction the way dishka ends a scope, or earlier, before the response.

dishka finalizes a generator factory with ``agen.asend(exc)``: the exception that ended
the scope comes back as the *value* of ``yield`` and is never raised inside the
generator. The usual ``async with manager.get_transaction() as s: yield s`` would
therefore COMMIT the work of a request whose handler failed. :class:`ScopedTransaction`
takes that value and exits the transaction with it, so the work is rolled back.

In a web request, :class:`~fkit_dishka.TransactionMiddleware` ends the request's
transactions before the response starts instead; the scope's own exit then finds them
ended and only cleans up.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

__all__ = ["ScopedTransaction", "track_request_transactions"]

T = TypeVar("T")

logger = logging.getLogger("fkit_dishka")

# The transactions opened while serving one request, in the order they began; set by
# TransactionMiddleware for each request (a list shared with the tasks the request spawns).
_REQUEST_TRANSACTIONS: ContextVar[list[ScopedTransaction[Any]] | None] = ContextVar(
    "fkit_dishka_request_transactions", default=None
)


def track_request_transactions() -> tuple[list[ScopedTransaction[Any]], Any]:
    """Start collecting the transactions this context opens; returns them and a reset token."""
    opened: list[ScopedTransaction[Any]] = []
    return opened, _REQUEST_TRANSACTIONS.set(opened)


def _session_of(value: object) -> AsyncSession | None:
    if isinstance(value, AsyncSession):
        return value
    session = getattr(value, "session", None)
    return session if isinstance(session, AsyncSession) else None


class ScopedTransaction(Generic[T]):
    """One transaction opened when a scope asks for it and ended when the scope closes.

    Use it in a generator factory::

        scoped = ScopedTransaction(manager.get_transaction())
        value = await scoped.enter()
        try:
            error = yield value
        except BaseException as exc:
            await scoped.exit(exc)
            raise
        await scoped.exit(error)

    Inside a request served through :class:`~fkit_dishka.TransactionMiddleware` it is
    ended before the response starts; the later ``exit()`` from the scope then only
    rolls back and closes what the session did after that (a streaming body, say).
    """

    __slots__ = ("_context", "_ended", "_value")

    def __init__(self, context: AbstractAsyncContextManager[T]) -> None:
        self._context = context
        self._ended = False
        self._value: T | None = None

    async def enter(self) -> T:
        """Begin the transaction and return what it yields (a session or a UoW transaction)."""
        self._value = await self._context.__aenter__()
        opened = _REQUEST_TRANSACTIONS.get()
        if opened is not None:
            opened.append(self)
        return self._value

    async def exit(self, error: BaseException | None) -> None:
        """Commit when ``error`` is None; otherwise roll back. Only the first call counts.

        The error is already on its way out of the scope, so its re-raise by the
        transaction (translated when it is a database error) is not raised again: dishka
        would wrap it in an ``ExitError`` and hide the original. A different failure, such
        as a failing COMMIT, is raised.
        """
        if self._ended:
            await self._clean_up_late_use()
            return
        self._ended = True
        if error is None:
            await self._context.__aexit__(None, None, None)
            return
        try:
            await self._context.__aexit__(type(error), error, error.__traceback__)
        except BaseException as raised:
            if raised is not error and raised.__cause__ is not error:
                raise

    async def _clean_up_late_use(self) -> None:
        # Used again after it ended early (before the response): that work was never
        # going to be committed; give the connection back instead of leaking it.
        session = _session_of(self._value)
        if session is None:
            return
        if session.in_transaction():
            logger.warning(
                "the request's session was used after its transaction ended (before the "
                "response started); that work is rolled back, not committed"
            )
        await session.close()
