"""One transaction per web request or per background job."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from fkit_core._owner import owner_of
from fkit_core._transaction import ManagedTransaction, TransactionSpec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from fkit_core._manager import AsyncSessionManager

__all__ = ["create_db_context", "create_db_dependency"]

_SPEC = TransactionSpec("transaction", flush_before_commit=True)


def create_db_context(
    session_maker: async_sessionmaker[AsyncSession] | AsyncSessionManager,
) -> Callable[[], ManagedTransaction[AsyncSession]]:
    """A factory of one-transaction sessions for background jobs and CLI commands.

    ``async with db_context() as session:`` commits when the block ends and rolls back
    on an exception or a cancellation, exactly like ``manager.get_transaction()``.

    Args:
        session_maker: An ``async_sessionmaker`` or an ``AsyncSessionManager``.

    Returns:
        A callable returning the async context manager.
    """
    source: Any = session_maker

    def db_context() -> ManagedTransaction[AsyncSession]:
        if hasattr(source, "session_maker_for"):
            return ManagedTransaction(source, source.session_maker(), _SPEC)
        return ManagedTransaction(owner_of(source), source(), _SPEC)

    return db_context


def create_db_dependency(
    session_maker: async_sessionmaker[AsyncSession] | AsyncSessionManager,
) -> Callable[..., Any]:
    """A FastAPI dependency giving each request one session in one transaction.

    The transaction commits after the handler returns and *before* the response is
    sent, so a failing COMMIT becomes an error response, never a 200 with nothing saved;
    an exception in the handler rolls it back. Use it as ``Depends(get_db)``; no special
    ``scope`` is needed (it sets ``scope="function"`` on its inner dependency, FastAPI
    0.121 and later). FastAPI is imported only when this function is called.

    Args:
        session_maker: An ``async_sessionmaker`` or an ``AsyncSessionManager``.

    Returns:
        The dependency callable.
    """
    context = create_db_context(session_maker)

    async def session_in_transaction() -> AsyncIterator[AsyncSession]:
        async with context() as session:
            yield session

    try:
        from fastapi import Depends
    except ImportError:  # plain Starlette or another framework: the generator itself
        return session_in_transaction
    if "scope" not in inspect.signature(Depends).parameters:
        return session_in_transaction

    # A plain (non-generator) dependency over a generator with scope="function": the
    # generator's exit (the COMMIT) runs before the response, however the user wires it.
    async def db_session(session: Any = Depends(session_in_transaction, scope="function")) -> Any:  # noqa: B008
        return session

    return db_session
