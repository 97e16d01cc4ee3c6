"""Session-scoped advisory locks, held on a dedicated connection for one block.

A session-level advisory lock belongs to the server connection, not to a transaction:
returned to the pool still held, it would outlive the block and be "held" by whatever
borrows that connection next. So the lock gets a connection of its own for the block,
is released on that very connection, and the unlock's answer is checked. Whenever
anything is in doubt (the unlock said False, the unlock failed, the acquisition was
interrupted half way), the connection is invalidated instead of returned: closing the
server connection releases every lock it held.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING

from sqlalchemy import exc as sa_exc

from fkit_core import sqlstate_of
from fkit_core.extending import raise_translated
from fkit_locks._acquired import AcquiredLock
from fkit_locks._errors import SessionLockUnsupportedError
from fkit_locks._events import emit_acquired, emit_not_acquired, emit_released
from fkit_locks._keys import LockKeyLike, ResolvedKey, resolve_key
from fkit_locks._sql import advisory_sql, key_params, lock_timeout_value, unlock_sql
from fkit_locks._xact import not_acquired

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from types import TracebackType
    from typing import Any

    from sqlalchemy.ext.asyncio import AsyncConnection

    from fkit_core import AsyncSessionManager

__all__ = ["AdvisoryLock", "advisory_lock"]

logger = logging.getLogger("fkit_locks")

# Session locks are taken on the primary: a lock on a replica would serialise nothing.
_ENGINE = "primary"
# An unlock that has not answered by then will not; closing the connection releases it.
RELEASE_TIMEOUT = 30.0


async def _shielded(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to its end even if the caller is cancelled meanwhile; then re-cancel."""
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


async def _discard(connection: AsyncConnection) -> None:
    """Invalidate and close: the server connection, and every lock on it, goes away."""
    try:
        await connection.invalidate()
    except Exception:
        logger.warning("invalidating a lock connection failed", exc_info=True)
    try:
        await connection.close()
    except Exception:
        logger.debug("closing an invalidated lock connection failed", exc_info=True)


class AdvisoryLock:
    """``async with advisory_lock(manager, key) as lock:``; see :func:`advisory_lock`."""

    __slots__ = (
        "_acquired_at",
        "_connection",
        "_key",
        "_manager",
        "_shared",
        "_timeout",
        "_token",
    )

    def __init__(
        self,
        manager: AsyncSessionManager,
        key: ResolvedKey,
        shared: bool,
        timeout: float | None,
    ) -> None:
        self._manager = manager
        self._key = key
        self._shared = shared
        self._timeout = timeout
        self._connection: AsyncConnection | None = None
        self._token: object | None = None
        self._acquired_at = 0.0

    async def __aenter__(self) -> AcquiredLock:
        manager, key, shared, timeout = self._manager, self._key, self._shared, self._timeout
        if self._connection is not None:
            raise RuntimeError("this advisory_lock() block is already held; make a new one")
        # Counted as in-flight work: close() waits for the block, then cancels it.
        self._token = manager.enter_work()
        try:
            connection = await manager.engine.connect()
        except BaseException as exc:
            manager.leave_work(self._token)
            raise_translated(manager, exc, _ENGINE)
            raise
        params = key_params(key)
        started = perf_counter()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            if timeout == 0:
                statement = advisory_sql(key, session_scope=True, mode="try", shared=shared)
                acquired = bool(await connection.scalar(statement, params))
            elif (limit := lock_timeout_value(timeout)) is None:
                statement = advisory_sql(key, session_scope=True, mode="wait", shared=shared)
                await connection.execute(statement, params)
                acquired = True
            else:
                statement = advisory_sql(key, session_scope=True, mode="bounded", shared=shared)
                try:
                    await connection.execute(statement, {**params, "timeout": limit})
                    acquired = True
                except sa_exc.DBAPIError as exc:
                    if sqlstate_of(exc) != "55P03":
                        raise
                    acquired = False  # a lock timeout: nothing was taken
        except BaseException as exc:
            # Interrupted or failed half way: whether the server granted the lock is not
            # known, so the connection must not go back to the pool.
            waited = perf_counter() - started
            emit_not_acquired(manager, key.display, waited, "session", shared, _ENGINE)
            await _shielded(self._finish(connection, discard=True))
            raise_translated(manager, exc, _ENGINE)
            raise
        now = perf_counter()
        if not acquired:
            emit_not_acquired(manager, key.display, now - started, "session", shared, _ENGINE)
            await _shielded(self._finish(connection, discard=False))
            why = "it is held elsewhere" if timeout == 0 else f"still held after {timeout}s"
            raise not_acquired(key.display, "session", shared, timeout, why)
        self._connection = connection
        self._acquired_at = now
        emit_acquired(manager, key.display, now - started, "session", shared, _ENGINE)
        return AcquiredLock(key.display, "session", shared, now - started, connection)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self._connection
        if connection is None:
            return
        self._connection = None
        # Shielded: a cancelled block still releases its lock before the task ends. The
        # block's own exception propagates; a failed release is logged, not raised (the
        # connection is discarded, which releases the lock anyway).
        await _shielded(self._release(connection))

    async def _release(self, connection: AsyncConnection) -> None:
        key, shared = self._key, self._shared
        discard = True
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                row = (await connection.execute(unlock_sql(key, shared), key_params(key))).one()
            if row[0]:
                discard = False
            else:
                logger.warning(
                    "advisory lock %s was not held by its connection at release (unlocked "
                    "by the block itself?); discarding the connection",
                    key.display,
                )
        except Exception:
            logger.warning(
                "releasing advisory lock %s failed; discarding the connection, which releases it",
                key.display,
                exc_info=True,
            )
        held = perf_counter() - self._acquired_at
        await self._finish(connection, discard=discard)
        emit_released(self._manager, key.display, held, "session", shared, _ENGINE)

    async def _finish(self, connection: AsyncConnection, *, discard: bool) -> None:
        try:
            if discard:
                await _discard(connection)
            else:
                try:
                    await connection.close()
                except Exception:
                    logger.warning("returning a lock connection failed", exc_info=True)
                    await _discard(connection)
        finally:
            self._manager.leave_work(self._token)
            self._token = None


def advisory_lock(
    manager: AsyncSessionManager,
    key: LockKeyLike,
    shared: bool = False,
    timeout: float | None = None,
    *,
    namespace: str | None = None,
) -> AdvisoryLock:
    """Hold a session-scoped advisory lock for one block, on a dedicated connection.

    ``async with advisory_lock(manager, "nightly-report") as lock:`` checks a connection
    out of the manager's primary pool (AUTOCOMMIT), takes the lock on it, runs the block
    and releases the lock on that same connection, checking the answer, also when the
    block raises (its exception is the one that propagates) or is cancelled (the release
    is shielded). The connection returns to the pool only when the unlock confirmed the
    release; on any doubt it is invalidated, which releases the lock server-side. The
    block counts as in-flight work: ``manager.close()`` waits for it, then cancels it.

    Use it for work that spans several transactions; for work inside one transaction,
    :func:`advisory_xact_lock` is cheaper and cannot leak.

    Args:
        manager: A session manager not configured for pgbouncer.
        key: An int, a pair of 32-bit ints, a str or a tuple of parts (see :func:`lock_key`).
        shared: Take the shared variant.
        timeout: Seconds to wait at most; None waits, 0 does not wait.
        namespace: Digest the key under this namespace.

    Raises:
        LockNotAcquiredError: Not acquired within ``timeout``.
        SessionLockUnsupportedError: The manager connects through pgbouncer.
        LockKeyError: The key cannot be a lock key.
        ConfigurationError: ``timeout`` is negative.
        ManagerClosedError: The manager is closing or closed.
    """
    resolved = resolve_key(key, namespace)
    lock_timeout_value(timeout)
    if manager.config.pgbouncer:
        raise SessionLockUnsupportedError(
            f"session manager {manager.name!r} connects through pgbouncer (pgbouncer=True), "
            "whose transaction pooling hands each transaction whatever server connection is "
            "free, so a session-level advisory lock could be taken on one connection and "
            "released on another, or never. Use the transaction-scoped form inside a "
            "transaction: `async with advisory_xact_lock(session, key):` or "
            "`try_advisory_xact_lock(session, key)`."
        )
    return AdvisoryLock(manager, resolved, shared, timeout)
