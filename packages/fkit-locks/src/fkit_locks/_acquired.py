"""``AcquiredLock``: what a lock block receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from fkit_core.events import LockScope

__all__ = ["AcquiredLock"]


@dataclass(frozen=True, slots=True)
class AcquiredLock:
    """A lock that is held, as ``async with ... as lock`` yields it.

    Attributes:
        key: The key as a display string: the numeric key PostgreSQL sees (``"42"``,
            ``"1,2"``), never the parts it was derived from.
        scope: ``"transaction"`` or ``"session"``.
        shared: Whether it is a shared lock.
        wait_seconds: How long taking it took.
        connection: For a session-scoped lock, the dedicated connection that holds it
            (AUTOCOMMIT). You may run statements on it; do not close, commit or
            invalidate it: the block releases the lock on it and returns it to the pool.
            None for transaction-scoped locks.
    """

    key: str
    scope: LockScope
    shared: bool
    wait_seconds: float
    connection: AsyncConnection | None = None
