"""Lock events on the manager's bus, and the end of transaction-scoped locks.

A transaction-scoped lock (advisory ``xact`` or table) is released by PostgreSQL when
its transaction ends, or when the savepoint it was taken in is rolled back. To report
``LockReleased`` at that moment, the session remembers the locks it holds (in
``session.info``) and two SQLAlchemy session events, installed once per process on the
``Session`` class the first time somebody wants ``LockReleased``, follow the
transaction tree: a savepoint that commits hands its locks to its parent; a transaction
or savepoint that ends any other way releases what it still holds. A class-level
listener costs every session a dictionary lookup per transaction end; a per-session
``event.listen`` would cost each locking transaction tens of microseconds.
"""

from __future__ import annotations

import threading
from time import perf_counter
from typing import TYPE_CHECKING

from sqlalchemy import event
from sqlalchemy.orm import Session

from fkit_core.events import LockAcquired, LockNotAcquired, LockReleased
from fkit_core.extending import engine_name_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import SessionTransaction

    from fkit_core.events import LockScope
    from fkit_core.extending import WorkOwner

__all__ = ["emit_acquired", "emit_not_acquired", "emit_released", "track_until_transaction_end"]

HELD_INFO_KEY = "fkit_locks.held"


def emit_acquired(
    owner: WorkOwner, key: str, wait: float, scope: LockScope, shared: bool, engine: str
) -> None:
    """Emit ``LockAcquired`` when somebody listens."""
    bus = owner.bus
    if bus.wants(LockAcquired):
        bus.emit(LockAcquired(owner.name, key, wait, scope, shared, engine))


def emit_not_acquired(
    owner: WorkOwner, key: str, wait: float, scope: LockScope, shared: bool, engine: str
) -> None:
    """Emit ``LockNotAcquired`` when somebody listens."""
    bus = owner.bus
    if bus.wants(LockNotAcquired):
        bus.emit(LockNotAcquired(owner.name, key, wait, scope, shared, engine))


def emit_released(
    owner: WorkOwner, key: str, held: float, scope: LockScope, shared: bool, engine: str
) -> None:
    """Emit ``LockReleased`` when somebody listens."""
    bus = owner.bus
    if bus.wants(LockReleased):
        bus.emit(LockReleased(owner.name, key, held, scope, shared, engine))


class _Held:
    """One transaction-scoped lock a session holds, and the transaction that owns it."""

    __slots__ = ("acquired_at", "engine", "key", "owner", "scope", "shared", "transaction")

    def __init__(
        self,
        transaction: SessionTransaction,
        owner: WorkOwner,
        key: str,
        scope: LockScope,
        shared: bool,
        engine: str,
        acquired_at: float,
    ) -> None:
        self.transaction = transaction
        self.engine = engine
        self.owner = owner
        self.key = key
        self.scope: LockScope = scope
        self.shared = shared
        self.acquired_at = acquired_at

    def release(self, now: float) -> None:
        held = now - self.acquired_at
        emit_released(self.owner, self.key, held, self.scope, self.shared, self.engine)


def _held_by(session: Session) -> list[_Held] | None:
    # `Session.info` creates a dict on first access; sessions that never locked have none.
    info = session.__dict__.get("info")
    return info.get(HELD_INFO_KEY) if info else None


def _after_commit(session: Session) -> None:
    held = _held_by(session)
    if not held:
        return
    # During a savepoint's commit (RELEASE) it is still the innermost nested
    # transaction; its locks now belong to its parent.
    nested = session.get_nested_transaction()
    if nested is None:
        return
    parent = nested.parent
    for item in held:
        if item.transaction is nested and parent is not None:
            item.transaction = parent


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    held = _held_by(session)
    if not held:
        return
    top = transaction.parent is None
    if not top and not transaction.nested:
        return  # an internal subtransaction (a flush): nothing is released
    now = perf_counter()
    keep: list[_Held] = []
    for item in held:
        if top or item.transaction is transaction:
            item.release(now)
        else:
            keep.append(item)
    held[:] = keep


_install_lock = threading.Lock()
_installed = False


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            event.listen(Session, "after_commit", _after_commit)
            event.listen(Session, "after_transaction_end", _after_transaction_end)
            _installed = True


def track_until_transaction_end(
    session: AsyncSession,
    owner: WorkOwner,
    key: str,
    scope: LockScope,
    shared: bool,
    acquired_at: float,
) -> None:
    """Emit ``LockReleased`` when the transaction (or savepoint) holding the lock ends.

    Does nothing when nobody listens for ``LockReleased``.
    """
    if not owner.bus.wants(LockReleased):
        return
    if not _installed:
        _install()
    sync = session.sync_session
    transaction = sync.get_nested_transaction() or sync.get_transaction()
    if transaction is None:
        return
    engine = engine_name_of(session)
    held: list[_Held] = sync.info.setdefault(HELD_INFO_KEY, [])
    held.append(_Held(transaction, owner, key, scope, shared, engine, acquired_at))
