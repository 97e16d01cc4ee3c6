"""``InMemoryUnitOfWork``: the Unit of Work's semantics over in-memory repositories."""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

__all__ = ["InMemoryTransaction", "InMemoryUnitOfWork"]

R = TypeVar("R")
Outcome = Literal["commit", "rollback"]


class InMemoryTransaction:
    """What an :class:`InMemoryUnitOfWork` block receives: its repositories as attributes.

    ``tx.users`` is the repository passed as ``users=``; :meth:`savepoint` and
    :meth:`flush` mirror ``AsyncSQLAlchemyUowTransaction``.
    """

    def __init__(self, uow: InMemoryUnitOfWork, repositories: Mapping[str, Any]) -> None:
        self._uow = uow
        self._repositories = dict(repositories)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._repositories[name]
        except KeyError:
            known = ", ".join(sorted(self._repositories)) or "none"
            msg = f"this InMemoryUnitOfWork has no repository {name!r} (it has: {known})"
            raise AttributeError(msg) from None

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """``async with tx.savepoint():`` a failure inside undoes only the block's writes."""
        state = self._uow._snapshot()
        try:
            yield
        except BaseException:
            self._uow._restore(state)
            raise

    async def flush(self) -> None:
        """Nothing to send: in memory, every write is immediate."""


class _ManagedControl:
    """The second half of ``managed_session()``: explicit ``commit()`` and ``rollback()``."""

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow
        self.base = uow._snapshot()
        self.committed = False

    async def commit(self) -> None:
        """Keep everything written so far."""
        self.base = self._uow._snapshot()
        self.committed = True
        self._uow.commits += 1

    async def rollback(self) -> None:
        """Undo everything written since the last commit."""
        self._uow._restore(self.base)
        self._uow.rollbacks += 1


class InMemoryUnitOfWork:
    """A Unit of Work whose transactions commit or roll back a snapshot of its repositories.

    The fake of ``AsyncSQLAlchemyUnitOfWork`` with the same methods and block semantics:
    ``transaction()`` keeps the block's writes when it ends normally and restores the
    snapshot taken at its start when it raises (the exception propagates);
    ``query()`` makes the repositories read-only and keeps nothing; ``managed_session()``
    keeps only what was committed; ``run(fn)`` runs ``fn(tx)`` in a transaction. The
    isolation level, timeouts and replica arguments are accepted and ignored.

    Repositories are snapshotted through their ``snapshot()`` / ``restore(state)``
    methods (:class:`InMemoryRepository` has them), else by deep-copying their attributes.

    Args:
        **repositories: The repositories, by the attribute name the blocks use.

    Attributes:
        commits: Transactions (and ``managed_session`` commits) that committed.
        rollbacks: Transactions that rolled back, ``query()`` blocks included.

    Example:
        >>> uow = InMemoryUnitOfWork(users=InMemoryRepository())  # doctest: +SKIP
        >>> async with uow.transaction() as tx:
        ...     await tx.users.save(User(id=None, email="a@example.com"))
    """

    def __init__(self, **repositories: Any) -> None:
        self.repositories: dict[str, Any] = repositories
        self.commits = 0
        self.rollbacks = 0

    def __repr__(self) -> str:
        names = ", ".join(self.repositories)
        return f"<InMemoryUnitOfWork {names} commits={self.commits} rollbacks={self.rollbacks}>"

    def _snapshot(self) -> dict[str, object]:
        states: dict[str, object] = {}
        for name, repository in self.repositories.items():
            snapshot = getattr(repository, "snapshot", None)
            states[name] = snapshot() if callable(snapshot) else copy.deepcopy(vars(repository))
        return states

    def _restore(self, states: dict[str, object]) -> None:
        for name, repository in self.repositories.items():
            restore = getattr(repository, "restore", None)
            if callable(restore):
                restore(states[name])
            else:
                vars(repository).clear()
                vars(repository).update(copy.deepcopy(states[name]))

    def _set_read_only(self, value: bool) -> None:
        for repository in self.repositories.values():
            if hasattr(repository, "read_only"):
                repository.read_only = value

    def _transaction(self) -> InMemoryTransaction:
        return InMemoryTransaction(self, self.repositories)

    @contextlib.asynccontextmanager
    async def _block(self, *, keep: bool, read_only: bool) -> AsyncIterator[InMemoryTransaction]:
        state = self._snapshot()
        if read_only:
            self._set_read_only(True)
        try:
            yield self._transaction()
        except BaseException:
            self._restore(state)
            self.rollbacks += 1
            raise
        else:
            if keep:
                self.commits += 1
            else:
                self._restore(state)
                self.rollbacks += 1
        finally:
            if read_only:
                self._set_read_only(False)

    def transaction(
        self,
        isolation_level: object = None,
        *,
        readonly: bool = False,
        deferrable: bool | None = None,
        statement_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> contextlib.AbstractAsyncContextManager[InMemoryTransaction]:
        """``async with uow.transaction() as tx:`` kept on success, undone on an exception."""
        return self._block(keep=not readonly, read_only=readonly)

    def query(
        self,
        isolation_level: object = None,
        *,
        replica: bool = False,
        deferrable: bool | None = None,
        statement_timeout: float | None = None,
    ) -> contextlib.AbstractAsyncContextManager[InMemoryTransaction]:
        """``async with uow.query() as qx:`` read-only: writes raise ReadOnlyTransactionError."""
        return self._block(keep=False, read_only=True)

    @contextlib.asynccontextmanager
    async def managed_session(
        self,
        isolation_level: object = None,
        *,
        statement_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> AsyncIterator[tuple[InMemoryTransaction, _ManagedControl]]:
        """``async with uow.managed_session() as (tx, session):`` call ``session.commit()``.

        What was not committed when the block ends is undone.
        """
        control = _ManagedControl(self)
        try:
            yield self._transaction(), control
        finally:
            self._restore(control.base)
            if not control.committed:
                self.rollbacks += 1

    async def run(
        self,
        fn: Callable[[InMemoryTransaction], Awaitable[R]],
        *,
        isolation_level: object = None,
        readonly: bool = False,
        retry: object = None,
        statement_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> R:
        """Run ``fn(tx)`` in one transaction and return its result (no conflicts to retry)."""
        async with self.transaction(readonly=readonly) as tx:
            return await fn(tx)
