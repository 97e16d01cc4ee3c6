"""Translation of driver errors (asyncpg, psycopg, via SQLAlchemy) into fkit errors by SQLSTATE."""

from __future__ import annotations

import socket

from sqlalchemy import exc as sa_exc

from fkit_core.errors import (
    AdminShutdownError,
    CheckViolationError,
    ConnectionLostError,
    DatabaseError,
    DeadlockDetectedError,
    ExclusionViolationError,
    FkitError,
    ForeignKeyViolationError,
    IntegrityViolationError,
    LockNotAvailableError,
    NotNullViolationError,
    PoolTimeoutError,
    QueryCanceledError,
    ReadOnlyTransactionError,
    SerializationFailureError,
    StatementTimeoutError,
    TooManyConnectionsError,
    UniqueViolationError,
)

__all__ = ["TRANSIENT_ERRORS", "sqlstate_of", "translate_error"]

_INTEGRITY: dict[str, type[IntegrityViolationError]] = {
    "23505": UniqueViolationError,
    "23503": ForeignKeyViolationError,
    "23502": NotNullViolationError,
    "23514": CheckViolationError,
    "23P01": ExclusionViolationError,
}

_BY_SQLSTATE: dict[str, type[DatabaseError]] = {
    "40001": SerializationFailureError,
    "40P01": DeadlockDetectedError,
    "55P03": LockNotAvailableError,
    "57P01": AdminShutdownError,
    "57P02": AdminShutdownError,
    "57P03": AdminShutdownError,
    "53300": TooManyConnectionsError,
    "25006": ReadOnlyTransactionError,
}

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionLostError,
    TooManyConnectionsError,
)
"""Errors that a fresh connection may not see again; safe to retry outside a transaction."""


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return seen


# psycopg reports failures while *connecting* without a SQLSTATE (libpq gives only the
# server's FATAL text then); these are the ones worth telling apart.
_CONNECT_FAILURES = (
    ("too many connections", "53300"),
    ("remaining connection slots are reserved", "53300"),
    ("the database system is shutting down", "57P03"),
    ("the database system is starting up", "57P03"),
    ("the database system is in recovery mode", "57P03"),
    ("terminating connection due to administrator command", "57P01"),
    ("password authentication failed", "28P01"),
    ("no pg_hba.conf entry", "28000"),
)


_LIBPQ_FAILURES = frozenset({"OperationalError", "ConnectionTimeout"})


def sqlstate_of(exc: BaseException) -> str | None:
    """Find the SQLSTATE in an exception or the driver exceptions it wraps."""
    chain = _chain(exc)
    for item in chain:
        code = getattr(item, "sqlstate", None) or getattr(item, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    for item in chain:
        text = str(item)
        if "database" in text and "does not exist" in text:
            return "3D000"
        for fragment, code in _CONNECT_FAILURES:
            if fragment in text:
                return code
    return None


def _detail(exc: BaseException, attribute: str) -> str | None:
    for item in _chain(exc):
        value = getattr(item, attribute, None)
        if value is None:
            diag = getattr(item, "diag", None)  # psycopg keeps server fields on .diag
            value = getattr(diag, attribute, None)
        if isinstance(value, str):
            return value
    return None


def _never_connected(exc: BaseException, message: str) -> bool:
    # Refused, unknown host, no such Unix socket (asyncpg raises the OSError itself);
    # libpq says "connection failed" / "Connect call failed" in its own words.
    connect_errors = (ConnectionRefusedError, socket.gaierror, FileNotFoundError)
    if any(isinstance(item, connect_errors) for item in _chain(exc)):
        return True
    lowered = message.lower()
    return "connect call failed" in lowered or lowered.startswith("connection failed")


def _driver_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate_error(exc: BaseException) -> DatabaseError | PoolTimeoutError | None:
    """Return the fkit error for a driver or SQLAlchemy error, or None if it is not one.

    The caller raises the result ``from exc`` so the original stays chained.
    """
    if isinstance(exc, sa_exc.TimeoutError):
        return PoolTimeoutError(
            f"no connection could be checked out of the pool in time ({exc}); raise pool.size, "
            "pool.max_overflow or pool.timeout, or hold connections for shorter"
        )
    is_dbapi = isinstance(exc, sa_exc.DBAPIError)
    # A bare OSError is how asyncpg reports a failed connect (refused, unreachable, a
    # missing Unix socket). TimeoutError is an OSError too, but it is a deadline, not a
    # lost connection: the caller's own asyncio.timeout() inside a transaction, or
    # asyncpg's command_timeout. It stays a TimeoutError, and is not retried as transient.
    # SQLAlchemy 2.0 lets some driver errors raised while connecting through unwrapped
    # (asyncpg's TooManyConnectionsError, InvalidCatalogNameError): a server error
    # carries its SQLSTATE, so it is translated like a wrapped one.
    raw_server_error = (
        not is_dbapi
        and not isinstance(exc, FkitError)  # already translated (by fkit or a plugin)
        and isinstance(getattr(exc, "sqlstate", None), str)
    )
    if (
        not is_dbapi
        and not raw_server_error
        and (not isinstance(exc, OSError) or isinstance(exc, TimeoutError))
    ):
        return None
    sqlstate = sqlstate_of(exc)
    message = _driver_message(exc)
    suffix = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    if sqlstate is not None and sqlstate.startswith("23"):
        cls = _INTEGRITY.get(sqlstate, IntegrityViolationError)
        constraint = _detail(exc, "constraint_name")
        table = _detail(exc, "table_name")
        where = f", constraint {constraint}" if constraint else ""
        return cls(
            f"{message}{suffix[:-1]}{where})" if suffix else f"{message}{where}",
            sqlstate=sqlstate,
            constraint_name=constraint,
            table_name=table,
        )
    if sqlstate == "57014":
        timed_out = "statement timeout" in message
        cls2: type[DatabaseError] = StatementTimeoutError if timed_out else QueryCanceledError
        return cls2(message + suffix, sqlstate=sqlstate)
    known = _BY_SQLSTATE.get(sqlstate or "")
    if known is not None:
        return known(message + suffix, sqlstate=sqlstate)
    invalidated = is_dbapi and getattr(exc, "connection_invalidated", False)
    # psycopg raises OperationalError without a SQLSTATE when libpq itself fails
    # (refused, unreachable, dropped): the server never answered with an error. Its
    # ConnectionTimeout subclass is the same failure when `connect_timeout` expires.
    orig = getattr(exc, "orig", None)
    unreachable = sqlstate is None and type(orig).__name__ in _LIBPQ_FAILURES
    if invalidated or unreachable or (sqlstate or "").startswith("08") or isinstance(exc, OSError):
        what = (
            "could not connect to PostgreSQL"
            if _never_connected(exc, message)
            else "the connection to PostgreSQL was lost"
        )
        return ConnectionLostError(f"{what}: {message}{suffix}", sqlstate=sqlstate)
    return DatabaseError(message + suffix, sqlstate=sqlstate)
