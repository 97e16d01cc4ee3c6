"""The SQL fkit-locks sends, built once, and what every lock path shares.

Every statement takes its key as bound parameters, cast explicitly so that both drivers
pick the ``bigint`` or ``(integer, integer)`` overload whatever Python int they bind.
Where a value must be set *before* a lock call in the same statement, a subquery with
``OFFSET 0`` fences it: PostgreSQL never flattens such a subquery, so its row (and its
side effect) is produced before the outer target list is evaluated.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from fkit_core.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import TextClause

    from fkit_locks._keys import ResolvedKey

__all__ = [
    "RELEASE",
    "RESTORE_LOCK_TIMEOUT",
    "ROLLBACK_TO",
    "SAVEPOINT",
    "SET_LOCK_TIMEOUT",
    "advisory_sql",
    "key_params",
    "lock_timeout_value",
    "unlock_sql",
]

_ARGS = {1: "CAST(:k0 AS bigint)", 2: "CAST(:k0 AS integer), CAST(:k1 AS integer)"}


def _function(session_scope: bool, try_: bool, shared: bool) -> str:
    name = "pg_try_advisory" if try_ else "pg_advisory"
    name += "_lock" if session_scope else "_xact_lock"
    return name + ("_shared" if shared else "")


def _build_advisory() -> dict[tuple[bool, str, bool, int], TextClause]:
    built: dict[tuple[bool, str, bool, int], TextClause] = {}
    for session_scope in (False, True):
        for shared in (False, True):
            for arity, args in _ARGS.items():
                try_fn = _function(session_scope, True, shared)
                wait_fn = _function(session_scope, False, shared)
                built[session_scope, "try", shared, arity] = text(f"SELECT {try_fn}({args})")
                built[session_scope, "wait", shared, arity] = text(f"SELECT {wait_fn}({args})")
                if session_scope:
                    # One implicit (autocommit) transaction: the local setting lives only
                    # for this statement, so it can never leak into the pooled connection.
                    sql = (
                        f"SELECT {wait_fn}({args}) FROM "  # noqa: S608 (fixed names only)
                        "(SELECT set_config('lock_timeout', :timeout, true) OFFSET 0) AS t"
                    )
                else:
                    # Inside the caller's transaction: wait with our timeout, then put the
                    # caller's value back in the same round trip.
                    sql = (
                        "SELECT set_config('lock_timeout', :previous, true) FROM "  # noqa: S608
                        f"(SELECT {wait_fn}({args}) OFFSET 0) AS t"
                    )
                built[session_scope, "bounded", shared, arity] = text(sql)
    return built


_ADVISORY = _build_advisory()

_UNLOCK = {
    (shared, arity): text(
        # Release the key and check the answer; then drop whatever else this dedicated
        # connection may hold, so it can go back to the pool clean.
        f"SELECT t.released, pg_advisory_unlock_all() FROM "  # noqa: S608 (fixed names)
        f"(SELECT pg_advisory_unlock{'_shared' if shared else ''}({args}) AS released "
        "OFFSET 0) AS t"
    )
    for shared in (False, True)
    for arity, args in _ARGS.items()
}

SET_LOCK_TIMEOUT = text(
    "SELECT t.previous, set_config('lock_timeout', :timeout, true) FROM "
    "(SELECT current_setting('lock_timeout') AS previous OFFSET 0) AS t"
)
_MAX_LOCK_TIMEOUT_MS = 2**31 - 1
RESTORE_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :previous, true)")
SAVEPOINT = text("SAVEPOINT fkit_locks_wait")
RELEASE = text("RELEASE SAVEPOINT fkit_locks_wait")
ROLLBACK_TO = text("ROLLBACK TO SAVEPOINT fkit_locks_wait")


def advisory_sql(key: ResolvedKey, *, session_scope: bool, mode: str, shared: bool) -> TextClause:
    """The statement for one advisory lock call; ``mode`` is try, wait or bounded."""
    return _ADVISORY[session_scope, mode, shared, len(key.args)]


def unlock_sql(key: ResolvedKey, shared: bool) -> TextClause:
    """The statement that releases a session-scoped lock and anything else held."""
    return _UNLOCK[shared, len(key.args)]


def key_params(key: ResolvedKey) -> dict[str, Any]:
    """The bound parameters of a key."""
    args = key.args
    return {"k0": args[0]} if len(args) == 1 else {"k0": args[0], "k1": args[1]}


def lock_timeout_value(timeout: float | None) -> str | None:
    """``lock_timeout`` for a timeout in seconds: None to wait without our own limit.

    A timeout of 0 is not a ``lock_timeout`` of 0 (which PostgreSQL reads as "no
    limit"): callers turn it into a try. Anything positive becomes at least 1 ms, so a
    tiny timeout never rounds down to "wait forever".

    Raises:
        ConfigurationError: The timeout is negative or not a number.
    """
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or math.isnan(timeout)
        or timeout < 0
    ):
        raise ConfigurationError(
            f"timeout={timeout!r} must be None (wait as long as the transaction allows), "
            "0 (do not wait) or a positive number of seconds"
        )
    milliseconds = max(1, math.ceil(timeout * 1000))
    if milliseconds > _MAX_LOCK_TIMEOUT_MS:
        return None  # beyond what lock_timeout can express: as good as no limit
    return f"{milliseconds}ms"
