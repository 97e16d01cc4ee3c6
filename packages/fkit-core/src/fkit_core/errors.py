"""The errors fkit raises: one root, specific subclasses, and driver errors translated by SQLSTATE.

Every error fkit raises derives from :class:`FkitError` and, where one fits, from the
closest builtin, so ``except TimeoutError`` keeps working. Database errors coming from
asyncpg or psycopg (wrapped by SQLAlchemy) are translated by their SQLSTATE into the
classes below; the original exception is always chained as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "AdminShutdownError",
    "CheckViolationError",
    "CommitOutcomeUnknownError",
    "ConfigurationError",
    "ConnectionLostError",
    "DatabaseError",
    "DeadlockDetectedError",
    "ExclusionViolationError",
    "FkitError",
    "ForeignKeyViolationError",
    "IntegrityViolationError",
    "LockNotAvailableError",
    "ManagerClosedError",
    "ManagerNotStartedError",
    "MigrationError",
    "MissingDependencyError",
    "NotNullViolationError",
    "PluginConflictError",
    "PluginError",
    "PoolTimeoutError",
    "QueryCanceledError",
    "ReadOnlyTransactionError",
    "RowChangeTimeoutError",
    "RowNotFoundError",
    "SerializationFailureError",
    "StatementTimeoutError",
    "TooManyConnectionsError",
    "UniqueViolationError",
]


class FkitError(Exception):
    """Root of every error fkit raises."""


class ConfigurationError(FkitError, ValueError):
    """A setting or argument has a value fkit cannot use; the message names it."""


class ManagerClosedError(FkitError, RuntimeError):
    """The session manager is closing or closed and refuses new work."""


class ManagerNotStartedError(FkitError, RuntimeError):
    """The session manager was used in a way that needs ``await manager.start()`` first."""


class PoolTimeoutError(FkitError, TimeoutError):
    """No connection could be checked out of the pool within the pool timeout."""


class MissingDependencyError(FkitError, ImportError):
    """An optional dependency is not installed; the message names what to install."""

    def __init__(self, feature: str, distribution: str) -> None:
        """Build the message from the feature that needs it and the distribution to install.

        Args:
            feature: What the caller tried to use.
            distribution: The pip requirement that provides it, e.g. ``fkit-core[asyncpg]``.
        """
        self.feature = feature
        self.distribution = distribution
        super().__init__(
            f"{feature} needs {distribution!r}: install it with `pip install {distribution}`"
        )


class MigrationError(FkitError, RuntimeError):
    """An Alembic migration run failed; the Alembic or driver error is chained as ``__cause__``.

    PostgreSQL runs DDL in transactions, so the failed run left the database as it was
    before it (or, with ``transaction_per_migration``, after the last good revision).
    """


class PluginError(FkitError, RuntimeError):
    """A plugin could not be loaded or set up."""


class PluginConflictError(PluginError):
    """Two installed distributions register a plugin under the same name."""


class DatabaseError(FkitError):
    """A database error, translated from the driver's exception by SQLSTATE.

    Attributes:
        sqlstate: The five-character SQLSTATE, when the server or driver gave one.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate

    @property
    def sqlstate_class(self) -> str | None:
        """The two-character SQLSTATE class (``"23"`` for integrity violations)."""
        return self.sqlstate[:2] if self.sqlstate else None


class ConnectionLostError(DatabaseError, ConnectionError):
    """The connection to the server broke or could not be made (class 08, a dropped socket)."""


class AdminShutdownError(ConnectionLostError):
    """The server terminated the connection (57P01 admin shutdown, 57P02, 57P03)."""


class TooManyConnectionsError(DatabaseError, ConnectionError):
    """The server refused the connection: too many connections (53300)."""


class CommitOutcomeUnknownError(ConnectionLostError):
    """The connection broke during COMMIT: the transaction may or may not have committed.

    fkit never retries such work automatically; check the data, or make the work idempotent.
    """


class SerializationFailureError(DatabaseError):
    """A concurrent transaction conflicted (40001); re-running the whole transaction may succeed."""


class DeadlockDetectedError(DatabaseError):
    """The server broke a deadlock by aborting this transaction (40P01)."""


class LockNotAvailableError(DatabaseError):
    """A lock could not be taken at once or within ``lock_timeout`` (55P03)."""


class QueryCanceledError(DatabaseError, TimeoutError):
    """The statement was cancelled (57014), by a cancel request or a timeout."""


class StatementTimeoutError(QueryCanceledError):
    """The statement ran past ``statement_timeout`` (57014)."""


class ReadOnlyTransactionError(DatabaseError):
    """A write was attempted in a read-only transaction (25006)."""


class IntegrityViolationError(DatabaseError):
    """An integrity constraint was violated (SQLSTATE class 23).

    Attributes:
        constraint_name: The violated constraint, when the server named it.
        table_name: The table, when the server named it.
    """

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        constraint_name: str | None = None,
        table_name: str | None = None,
    ) -> None:
        super().__init__(message, sqlstate=sqlstate)
        self.constraint_name = constraint_name
        self.table_name = table_name


class UniqueViolationError(IntegrityViolationError):
    """A unique or primary-key constraint was violated (23505)."""


class ForeignKeyViolationError(IntegrityViolationError):
    """A foreign-key constraint was violated (23503)."""


class NotNullViolationError(IntegrityViolationError):
    """A NOT NULL constraint was violated (23502)."""


class CheckViolationError(IntegrityViolationError):
    """A CHECK constraint was violated (23514)."""


class RowNotFoundError(FkitError, LookupError):
    """The row a caller waits on does not exist (or was deleted while waiting)."""


class RowChangeTimeoutError(FkitError, TimeoutError):
    """The watched row did not change before the timeout."""


class ExclusionViolationError(IntegrityViolationError):
    """An exclusion constraint was violated (23P01)."""
