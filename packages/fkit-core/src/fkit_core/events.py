"""The event vocabulary of the session manager's bus.

Events are small frozen dataclasses. fkit-core emits the manager, engine, transaction,
retry, health and error events; plugins such as fkit-locks emit the lock events, which
are defined here so that consumers (metrics, traces) never import the emitting plugin.
Every event carries ``manager``, the name of the session manager it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "DatabaseErrorOccurred",
    "EngineCreated",
    "EngineRole",
    "Event",
    "HealthChecked",
    "LockAcquired",
    "LockNotAcquired",
    "LockReleased",
    "LockScope",
    "ManagerClosed",
    "ManagerClosing",
    "ManagerStarted",
    "ReplicaFallback",
    "RetryScheduled",
    "TransactionEnded",
    "TransactionKind",
    "TransactionOutcome",
    "TransactionStarted",
]

EngineRole = Literal["primary", "replica"]
"""Which kind of engine: the primary (writes) or a read replica."""

TransactionKind = Literal["transaction", "query", "managed_session", "savepoint"]
"""What opened the transaction: a read-write transaction, a read-only query, an
explicitly managed session, or a savepoint inside another transaction."""

TransactionOutcome = Literal["commit", "rollback", "error", "cancelled"]
"""How a transaction ended: committed; rolled back on purpose (read-only queries,
managed sessions left without commit); rolled back because the body raised or the
commit failed; rolled back because the task was cancelled."""

LockScope = Literal["transaction", "session", "table"]
"""Advisory locks are transaction- or session-scoped; table locks are always transactional."""


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every bus event.

    Attributes:
        manager: The name of the session manager that emitted the event.
    """

    manager: str


@dataclass(frozen=True, slots=True)
class ManagerStarted(Event):
    """The manager created its engines and set up its plugins.

    Attributes:
        plugins: Names of the plugins that were set up, in setup order.
    """

    plugins: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ManagerClosing(Event):
    """``close()`` began: new work is refused from now on.

    Attributes:
        in_flight: Transactions and sessions still running at that moment.
        timeout: Seconds they are given to finish before they are cancelled.
    """

    in_flight: int
    timeout: float


@dataclass(frozen=True, slots=True)
class ManagerClosed(Event):
    """The engines are disposed.

    Attributes:
        cancelled: In-flight units of work that were cancelled because the timeout passed.
    """

    cancelled: int


@dataclass(frozen=True, slots=True)
class EngineCreated(Event):
    """An engine was created; plugins attach SQLAlchemy pool and engine events here.

    Attributes:
        engine_name: ``"primary"`` or the replica's name (``"replica-1"``, ...).
        role: Primary or replica.
        engine: The engine itself.
    """

    engine_name: str
    role: EngineRole
    engine: AsyncEngine


@dataclass(frozen=True, slots=True)
class TransactionStarted(Event):
    """A transaction (or savepoint) began.

    Attributes:
        engine_name: The engine it runs on.
        kind: What opened it.
        isolation_level: The requested isolation level, or None for the server default.
        readonly: Whether it is read-only.
        nested: Whether it is a savepoint inside another transaction.
    """

    engine_name: str
    kind: TransactionKind
    isolation_level: str | None
    readonly: bool
    nested: bool


@dataclass(frozen=True, slots=True)
class TransactionEnded(Event):
    """A transaction (or savepoint) ended.

    Attributes:
        engine_name: The engine it ran on.
        kind: What opened it.
        isolation_level: The requested isolation level, or None for the server default.
        readonly: Whether it was read-only.
        nested: Whether it was a savepoint inside another transaction.
        outcome: How it ended.
        duration: Seconds from start to end, commit or rollback included.
        error: The class name of the exception that ended it, if any.
    """

    engine_name: str
    kind: TransactionKind
    isolation_level: str | None
    readonly: bool
    nested: bool
    outcome: TransactionOutcome
    duration: float
    error: str | None


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    """A failed attempt will be retried after ``delay`` seconds.

    Attributes:
        attempt: The attempt that failed (1 for the first).
        delay: Seconds until the next attempt.
        reason: Why: the translated error class name (``"SerializationFailureError"``).
        operation: What is retried (the function's qualified name).
        engine_name: The engine it happened on.
    """

    attempt: int
    delay: float
    reason: str
    operation: str
    engine_name: str = "primary"


@dataclass(frozen=True, slots=True)
class ReplicaFallback(Event):
    """A read meant for a replica went to the primary: no replica was reachable.

    Attributes:
        replicas: The replica engine names that were skipped.
        reason: Why.
    """

    replicas: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class LockAcquired(Event):
    """A lock was taken.

    Attributes:
        key: The lock key as a display string (never contains secrets).
        wait_seconds: Time spent waiting for it.
        scope: Transaction, session or table.
        shared: Whether it is a shared lock.
        engine_name: The engine it happened on.
    """

    key: str
    wait_seconds: float
    scope: LockScope
    shared: bool
    engine_name: str = "primary"


@dataclass(frozen=True, slots=True)
class LockNotAcquired(Event):
    """A lock could not be taken (held elsewhere, timed out, or ``nowait``).

    Attributes:
        key: The lock key as a display string.
        wait_seconds: Time spent before giving up.
        scope: Transaction, session or table.
        shared: Whether a shared lock was asked for.
        engine_name: The engine it happened on.
    """

    key: str
    wait_seconds: float
    scope: LockScope
    shared: bool
    engine_name: str = "primary"


@dataclass(frozen=True, slots=True)
class LockReleased(Event):
    """A lock was released.

    Attributes:
        key: The lock key as a display string.
        held_seconds: How long it was held.
        scope: Transaction, session or table.
        shared: Whether it was a shared lock.
        engine_name: The engine it happened on.
    """

    key: str
    held_seconds: float
    scope: LockScope
    shared: bool
    engine_name: str = "primary"


@dataclass(frozen=True, slots=True)
class HealthChecked(Event):
    """A health check finished.

    Attributes:
        engine_name: The engine that was checked.
        healthy: Whether the check query succeeded in time.
        latency: Seconds the check took.
        error: The class name of the error, if it failed.
    """

    engine_name: str
    healthy: bool
    latency: float
    error: str | None


@dataclass(frozen=True, slots=True)
class DatabaseErrorOccurred(Event):
    """A driver error was translated into an fkit error.

    Carries only bounded values (class names and SQLSTATE), never message text, so
    consumers can use them as metric labels.

    Attributes:
        engine_name: The engine the error came from.
        error: The translated error's class name.
        sqlstate: The SQLSTATE, when known.
        sqlstate_class: Its two-character class, when known.
    """

    engine_name: str
    error: str
    sqlstate: str | None
    sqlstate_class: str | None
