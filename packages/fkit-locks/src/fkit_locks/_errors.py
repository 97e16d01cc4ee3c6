"""The errors fkit-locks raises; each derives from fkit's root and the closest builtin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fkit_core.errors import ConfigurationError, DatabaseError, FkitError, LockNotAvailableError

if TYPE_CHECKING:
    from fkit_core.events import LockScope

__all__ = [
    "LockError",
    "LockKeyError",
    "LockModeError",
    "LockNotAcquiredError",
    "SessionLockUnsupportedError",
    "TableNameError",
    "TableNotFoundError",
    "TransactionRequiredError",
]


class LockError(FkitError):
    """Root of the errors raised by fkit-locks."""


class LockKeyError(LockError, ConfigurationError):
    """A lock key (or namespace) is of a kind or size PostgreSQL cannot take."""


class LockModeError(LockError, ConfigurationError):
    """A table lock mode is not one of PostgreSQL's eight modes."""


class TableNameError(LockError, ConfigurationError):
    """A table given to ``lock_tables`` is not something that can name a table."""


class TransactionRequiredError(LockError, RuntimeError):
    """A transaction-scoped lock was asked for on a session that is not in a transaction."""


class SessionLockUnsupportedError(LockError, ConfigurationError):
    """Session-scoped advisory locks were asked for through pgbouncer's transaction pooling."""


class LockNotAcquiredError(LockError, LockNotAvailableError, TimeoutError):
    """A lock was not taken: held elsewhere past the timeout, or not free with ``nowait``.

    It is a :class:`~fkit_core.errors.LockNotAvailableError` (SQLSTATE 55P03) and a
    :class:`TimeoutError`. When fkit-locks raises it, the caller's transaction is still
    usable: the attempt ran inside a savepoint that was rolled back.

    Attributes:
        key: The lock key as a display string (the numeric key, or the table names).
        scope: ``"transaction"``, ``"session"`` or ``"table"``.
        shared: Whether a shared lock was asked for.
        timeout: The timeout in seconds (0 for a try / ``nowait``), or None.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str,
        scope: LockScope,
        shared: bool,
        timeout: float | None,
        sqlstate: str | None = "55P03",
    ) -> None:
        super().__init__(message, sqlstate=sqlstate)
        self.key = key
        self.scope: LockScope = scope
        self.shared = shared
        self.timeout = timeout


class TableNotFoundError(LockError, DatabaseError, LookupError):
    """A table (or its schema) given to ``lock_tables`` does not exist.

    Attributes:
        tables: Every table of the ``LOCK`` statement, as rendered (quoted) SQL names.
    """

    def __init__(self, message: str, *, tables: tuple[str, ...], sqlstate: str | None) -> None:
        super().__init__(message, sqlstate=sqlstate)
        self.tables = tables
