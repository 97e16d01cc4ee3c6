"""``PostgresAdvisoryLockMixin``: lock methods for Unit of Work transaction classes."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from fkit_locks._modes import LockMode, LockModeLike
from fkit_locks._tables import TableLike, TableLock, lock_tables
from fkit_locks._xact import AdvisoryXactLock, advisory_xact_lock, try_advisory_xact_lock

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_locks._keys import LockKeyLike

__all__ = ["PostgresAdvisoryLockMixin"]


class PostgresAdvisoryLockMixin:
    """Transaction-scoped locks as methods of a transaction class that has a ``session``.

    Mix it into your Unit of Work transaction class::

        class MyTransaction(AsyncSQLAlchemyUowTransaction, PostgresAdvisoryLockMixin):
            lock_namespace = "billing"  # optional: digest every key under it

    Every lock lasts until the Unit of Work transaction ends.

    Attributes:
        lock_namespace: Namespace applied to every key of these methods (None: none).
    """

    session: AsyncSession
    lock_namespace: ClassVar[str | None] = None

    def _namespace(self, namespace: str | None) -> str | None:
        return namespace if namespace is not None else self.lock_namespace

    async def try_advisory_lock(
        self, key: LockKeyLike, shared: bool = False, *, namespace: str | None = None
    ) -> bool:
        """Take a transaction-scoped advisory lock if free (:func:`try_advisory_xact_lock`).

        Returns:
            True when held now, False when another session holds it.
        """
        return await try_advisory_xact_lock(
            self.session, key, shared, namespace=self._namespace(namespace)
        )

    def advisory_lock(
        self,
        key: LockKeyLike,
        shared: bool = False,
        timeout: float | None = None,
        *,
        namespace: str | None = None,
    ) -> AdvisoryXactLock:
        """Wait for a transaction-scoped advisory lock; see :func:`advisory_xact_lock`.

        Use as ``async with tx.advisory_lock("key", timeout=5):``.
        """
        return advisory_xact_lock(
            self.session, key, shared, timeout, namespace=self._namespace(namespace)
        )

    def lock_tables(
        self,
        tables: Sequence[TableLike] | TableLike,
        mode: LockModeLike = LockMode.SHARE_UPDATE_EXCLUSIVE,
        *,
        timeout: float | None = None,
        nowait: bool = False,
    ) -> TableLock:
        """Lock tables until the transaction ends; see :func:`lock_tables`."""
        return lock_tables(self.session, tables, mode, timeout=timeout, nowait=nowait)
