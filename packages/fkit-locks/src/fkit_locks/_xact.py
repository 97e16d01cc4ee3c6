"""Transaction-scoped advisory locks: held until the caller's transaction ends."""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc

from fkit_core import sqlstate_of
from fkit_core.extending import engine_name_of, owner_of, raise_translated
from fkit_locks._acquired import AcquiredLock
from fkit_locks._errors import LockNotAcquiredError, TransactionRequiredError
from fkit_locks._events import emit_acquired, emit_not_acquired, track_until_transaction_end
from fkit_locks._keys import LockKeyLike, ResolvedKey, resolve_key
from fkit_locks._sql import (
    RELEASE,
    ROLLBACK_TO,
    SAVEPOINT,
    SET_LOCK_TIMEOUT,
    advisory_sql,
    key_params,
    lock_timeout_value,
)

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy import TextClause
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.sql.base import Executable

    from fkit_core.events import LockScope
    from fkit_core.extending import WorkOwner

__all__ = [
    "AdvisoryXactLock",
    "advisory_xact_lock",
    "bounded_attempt",
    "not_acquired",
    "require_transaction",
    "try_advisory_xact_lock",
]


def require_transaction(session: AsyncSession, what: str) -> None:
    """Refuse transaction-scoped locks outside a transaction: they would end at once."""
    if not session.in_transaction():
        raise TransactionRequiredError(
            f"{what} needs a session inside a transaction (the lock lasts until it ends); "
            "use `async with manager.get_transaction() as session:`, "
            "`async with session.begin():` or a Unit of Work transaction"
        )


def not_acquired(
    key: str,
    scope: LockScope,
    shared: bool,
    timeout: float | None,
    why: str,
    *,
    what: str | None = None,
) -> LockNotAcquiredError:
    """The error for a lock that was not taken; ``what`` names it (default: by scope)."""
    if what is None:
        what = f"{'shared ' if shared else ''}{scope}-scoped advisory lock"
    return LockNotAcquiredError(
        f"the {what} {key} was not acquired: {why}",
        key=key,
        scope=scope,
        shared=shared,
        timeout=timeout,
    )


async def bounded_attempt(
    session: AsyncSession,
    owner: WorkOwner,
    statement: Executable,
    params: dict[str, Any],
    *,
    timeout: str | None,
    restore: TextClause | None,
) -> bool:
    """Run one lock statement inside a savepoint, waiting at most ``timeout``.

    Returns True when it succeeded, False when the lock was not available (55P03): the
    savepoint is rolled back, so the caller's transaction is still usable and its
    ``lock_timeout`` is what it was. With a ``timeout``, the previous ``lock_timeout`` is
    read and set in one round trip, and put back after the lock (in the lock statement
    itself when ``restore`` is None, else by ``restore``).
    """
    await session.execute(SAVEPOINT)
    try:
        if timeout is not None:
            result = await session.execute(SET_LOCK_TIMEOUT, {"timeout": timeout})
            params = {**params, "previous": result.scalar_one()}
        await session.execute(statement, params)
        if restore is not None and timeout is not None:
            await session.execute(restore, params)
    except sa_exc.DBAPIError as exc:
        # ROLLBACK TO also undoes our set_config: the caller's value is back.
        try:
            await session.execute(ROLLBACK_TO)
            await session.execute(RELEASE)
        except Exception:
            raise_translated(owner, exc, engine_name_of(session))
            raise
        if sqlstate_of(exc) == "55P03":
            return False
        raise_translated(owner, exc, engine_name_of(session))
        raise
    await session.execute(RELEASE)
    return True


async def try_advisory_xact_lock(
    session: AsyncSession,
    key: LockKeyLike,
    shared: bool = False,
    *,
    namespace: str | None = None,
) -> bool:
    """Take a transaction-scoped advisory lock if it is free, in one round trip.

    The lock is held until the session's transaction (or the savepoint it was taken in)
    ends; PostgreSQL offers no earlier release for this kind. Emits ``LockAcquired`` or
    ``LockNotAcquired`` on the session's manager's bus, and ``LockReleased`` when the
    transaction ends.

    Args:
        session: A session inside a transaction.
        key: An int, a pair of 32-bit ints, a str or a tuple of parts (see :func:`lock_key`).
        shared: Take the shared variant: shared holders coexist, an exclusive one waits.
        namespace: Digest the key under this namespace.

    Returns:
        True when the lock is now held (also when this transaction already held it),
        False when another session holds a conflicting one.

    Raises:
        TransactionRequiredError: The session is not in a transaction.
        LockKeyError: The key cannot be a lock key.
    """
    resolved = resolve_key(key, namespace)
    require_transaction(session, "try_advisory_xact_lock()")
    owner = owner_of(session)
    engine = engine_name_of(session)
    statement = advisory_sql(resolved, session_scope=False, mode="try", shared=shared)
    started = perf_counter()
    try:
        acquired = bool((await session.execute(statement, key_params(resolved))).scalar())
    except Exception as exc:
        waited = perf_counter() - started
        emit_not_acquired(owner, resolved.display, waited, "transaction", shared, engine)
        raise_translated(owner, exc, engine)
        raise
    now = perf_counter()
    if acquired:
        emit_acquired(owner, resolved.display, now - started, "transaction", shared, engine)
        track_until_transaction_end(session, owner, resolved.display, "transaction", shared, now)
    else:
        emit_not_acquired(owner, resolved.display, now - started, "transaction", shared, engine)
    return acquired


class AdvisoryXactLock:
    """``async with advisory_xact_lock(session, key) as lock:``; see :func:`advisory_xact_lock`."""

    __slots__ = ("_key", "_session", "_shared", "_timeout")

    def __init__(
        self, session: AsyncSession, key: ResolvedKey, shared: bool, timeout: float | None
    ) -> None:
        self._session = session
        self._key = key
        self._shared = shared
        self._timeout = timeout

    async def __aenter__(self) -> AcquiredLock:
        session, key, shared, timeout = self._session, self._key, self._shared, self._timeout
        require_transaction(session, "advisory_xact_lock()")
        owner = owner_of(session)
        engine = engine_name_of(session)
        params = key_params(key)
        started = perf_counter()
        try:
            if timeout == 0:
                statement = advisory_sql(key, session_scope=False, mode="try", shared=shared)
                acquired = bool((await session.execute(statement, params)).scalar())
            elif (limit := lock_timeout_value(timeout)) is None:
                await session.execute(
                    advisory_sql(key, session_scope=False, mode="wait", shared=shared), params
                )
                acquired = True
            else:
                statement = advisory_sql(key, session_scope=False, mode="bounded", shared=shared)
                acquired = await bounded_attempt(
                    session, owner, statement, params, timeout=limit, restore=None
                )
        except BaseException as exc:
            waited = perf_counter() - started
            emit_not_acquired(owner, key.display, waited, "transaction", shared, engine)
            raise_translated(owner, exc, engine)
            raise
        now = perf_counter()
        waited = now - started
        if not acquired:
            emit_not_acquired(owner, key.display, waited, "transaction", shared, engine)
            why = "it is held elsewhere" if timeout == 0 else f"still held after {timeout}s"
            raise not_acquired(key.display, "transaction", shared, timeout, why)
        emit_acquired(owner, key.display, waited, "transaction", shared, engine)
        track_until_transaction_end(session, owner, key.display, "transaction", shared, now)
        return AcquiredLock(key.display, "transaction", shared, waited)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Nothing to release: PostgreSQL ends transaction-scoped locks with the transaction.
        return None


def advisory_xact_lock(
    session: AsyncSession,
    key: LockKeyLike,
    shared: bool = False,
    timeout: float | None = None,
    *,
    namespace: str | None = None,
) -> AdvisoryXactLock:
    """Wait for a transaction-scoped advisory lock; use it as ``async with``.

    The lock is held from the block's start until the session's transaction ends (not
    until the block ends: PostgreSQL cannot release this kind earlier), so the block
    marks where the critical section starts.

    With a ``timeout``, the wait runs inside a savepoint with ``lock_timeout`` bound for
    that wait only (``set_config(..., true)``) and the previous value put back, so the
    rest of the transaction keeps its own ``lock_timeout``; when the time is up the
    savepoint is rolled back and :class:`LockNotAcquiredError` is raised, leaving the
    transaction usable. ``timeout=0`` is a try that raises instead of returning False.
    Without a timeout the wait is bounded only by the transaction's own ``lock_timeout``
    and ``statement_timeout``; if one of those fires, the translated error
    (``LockNotAvailableError``, ``StatementTimeoutError``) is raised and the transaction
    is aborted, as for any statement.

    Args:
        session: A session inside a transaction.
        key: An int, a pair of 32-bit ints, a str or a tuple of parts (see :func:`lock_key`).
        shared: Take the shared variant.
        timeout: Seconds to wait at most; None waits, 0 does not wait.
        namespace: Digest the key under this namespace.

    Raises:
        LockNotAcquiredError: Not acquired within ``timeout``.
        TransactionRequiredError: The session is not in a transaction.
        LockKeyError: The key cannot be a lock key.
        ConfigurationError: ``timeout`` is negative.
    """
    resolved = resolve_key(key, namespace)
    lock_timeout_value(timeout)  # validate now, not when the block starts
    return AdvisoryXactLock(session, resolved, shared, timeout)
