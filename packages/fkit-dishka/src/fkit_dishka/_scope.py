"""Ending a transaction the way dishka ends a scope.

dishka finalizes a generator factory with ``agen.asend(exc)``: the exception that ended
the scope comes back as the *value* of ``yield`` and is never raised inside the
generator. The usual ``async with manager.get_transaction() as s: yield s`` would
therefore COMMIT the work of a request whose handler failed. :class:`ScopedTransaction`
takes that value and exits the transaction with it, so the work is rolled back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

__all__ = ["ScopedTransaction"]

T = TypeVar("T")


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
    """

    __slots__ = ("_context",)

    def __init__(self, context: AbstractAsyncContextManager[T]) -> None:
        self._context = context

    async def enter(self) -> T:
        """Begin the transaction and return what it yields (a session or a UoW transaction)."""
        return await self._context.__aenter__()

    async def exit(self, error: BaseException | None) -> None:
        """Commit when ``error`` is None; otherwise roll back.

        The error is already on its way out of the scope, so its re-raise by the
        transaction (translated when it is a database error) is not raised again: dishka
        would wrap it in an ``ExitError`` and hide the original. A different failure, such
        as a failing COMMIT, is raised.
        """
        if error is None:
            await self._context.__aexit__(None, None, None)
            return
        try:
            await self._context.__aexit__(type(error), error, error.__traceback__)
        except BaseException as raised:
            if raised is not error and raised.__cause__ is not error:
                raise
