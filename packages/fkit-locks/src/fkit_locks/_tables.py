"""``lock_tables``: ``LOCK TABLE`` with quoted identifiers, a bounded wait and lock events."""

from __future__ import annotations

import re
from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlalchemy import inspect, table
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement, quoted_name
from sqlalchemy.sql.expression import TableClause

from fkit_core import sqlstate_of
from fkit_core.errors import ConfigurationError
from fkit_core.extending import engine_name_of, owner_of, raise_translated
from fkit_locks._errors import TableNameError, TableNotFoundError
from fkit_locks._events import emit_acquired, emit_not_acquired, track_until_transaction_end
from fkit_locks._modes import LockMode, LockModeLike, parse_lock_mode
from fkit_locks._sql import RESTORE_LOCK_TIMEOUT, lock_timeout_value
from fkit_locks._xact import bounded_attempt, not_acquired, require_transaction

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.sql.compiler import IdentifierPreparer, SQLCompiler

__all__ = ["LockTableStatement", "TableLike", "TableLock", "lock_tables", "render_table"]

TableLike: TypeAlias = type[Any] | TableClause | str
"""A mapped ORM class, a ``Table`` (or ``sqlalchemy.table()``), or ``"name"`` /
``"schema.name"``."""

_UNDEFINED = {"42P01": "table", "3F000": "schema"}
_MAX_IDENTIFIER = 63  # bytes: NAMEDATALEN - 1 in every PostgreSQL build fkit supports


def _check_identifier(part: str, what: str) -> None:
    if not part:
        raise TableNameError(f"the {what} name is empty")
    if "\x00" in part:
        raise TableNameError(f"the {what} name {part!r} contains a NUL character")
    if len(part.encode("utf-8", "surrogatepass")) > _MAX_IDENTIFIER:
        # PostgreSQL would silently truncate it and might then lock another table.
        raise TableNameError(
            f"the {what} name {part!r} is longer than PostgreSQL's "
            f"{_MAX_IDENTIFIER}-byte identifiers"
        )


def _parts(target: object) -> list[tuple[str | None, str]]:
    if isinstance(target, str):
        schema, dot, name = target.partition(".")
        return [(schema, name) if dot else (None, target)]
    if isinstance(target, TableClause):
        return [(target.schema, target.name)]
    mapper = inspect(target, raiseerr=False) if isinstance(target, type) else None
    tables = getattr(mapper, "tables", None)
    if tables:
        return [(t.schema, t.name) for t in tables if isinstance(t, TableClause)]
    raise TableNameError(
        f"cannot lock {target!r}: give a mapped ORM class, a Table, or a table name "
        "('name' or 'schema.name')"
    )


def table_clauses(target: TableLike) -> list[TableClause]:
    """The tables a table argument names, as plain ``table()`` clauses, checked.

    A mapped class gives every table it is stored in (joined inheritance: several).
    Names are taken exactly as they are: a ``Table``'s own quoting overrides are not
    followed, so the name that is locked is the name that was given.

    Raises:
        TableNameError: Not a table argument, or a name PostgreSQL cannot take as it is.
    """
    found = []
    for schema, name in _parts(target):
        _check_identifier(name, "table")
        if schema is not None:
            _check_identifier(schema, "schema")
        found.append(
            table(_exact(str(name)), schema=None if schema is None else _exact(str(schema)))
        )
    return found


_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")


def _exact(name: str) -> str:
    # SQLAlchemy decides whether to quote with a regex anchored by `$`, which also
    # matches before a trailing newline: "_\n" would go out unquoted and lock "_".
    # Anything but a plain lower-case identifier is quoted; reserved words like
    # `order` still get quoted by the preparer itself.
    return name if _PLAIN.fullmatch(name) else quoted_name(name, quote=True)


_display: IdentifierPreparer | None = None


def _display_preparer() -> IdentifierPreparer:
    global _display
    if _display is None:
        from sqlalchemy.dialects.postgresql.base import PGDialect

        # "named" parameters: no percent doubling, so a display name reads as SQL would.
        _display = PGDialect(paramstyle="named").identifier_preparer  # type: ignore[no-untyped-call]
    return _display


def render_table(target: TableLike) -> list[str]:
    """The SQL names of a table argument as PostgreSQL reads them (quoted where needed)."""
    preparer = _display_preparer()
    return [preparer.format_table(clause) for clause in table_clauses(target)]


class LockTableStatement(Executable, ClauseElement):
    """``LOCK TABLE ... IN <mode> MODE [NOWAIT]`` as a statement SQLAlchemy compiles.

    Compiled by the session's own dialect, so every identifier goes through that
    dialect's identifier preparer, with whatever escaping its parameter style needs;
    no name is ever pasted into SQL text.
    """

    # A rare statement: not worth a cache key; compiling it each time costs microseconds.
    inherit_cache = False

    def __init__(self, tables: list[TableClause], mode: LockMode, nowait: bool) -> None:
        self.tables = tables
        self.mode = mode
        self.nowait = nowait


@compiles(LockTableStatement)
def _compile_lock(element: LockTableStatement, compiler: SQLCompiler, **kw: Any) -> str:
    names = ", ".join(compiler.preparer.format_table(t) for t in element.tables)
    nowait = " NOWAIT" if element.nowait else ""
    return f"LOCK TABLE {names} IN {element.mode.value} MODE{nowait}"


class TableLock:
    """``async with lock_tables(session, [...]) as session:``; see :func:`lock_tables`."""

    __slots__ = ("_mode", "_names", "_nowait", "_session", "_tables", "_timeout")

    def __init__(
        self,
        session: AsyncSession,
        tables: list[TableClause],
        mode: LockMode,
        timeout: float | None,
        nowait: bool,
    ) -> None:
        self._session = session
        self._tables = tables
        preparer = _display_preparer()
        self._names = tuple(preparer.format_table(t) for t in tables)
        self._mode = mode
        self._timeout = timeout
        self._nowait = nowait

    async def __aenter__(self) -> AsyncSession:
        session, mode, names = self._session, self._mode, self._names
        require_transaction(session, "lock_tables()")
        owner = owner_of(session)
        engine = engine_name_of(session)
        display = ", ".join(names)
        shared = not mode.self_conflicting
        nowait = self._nowait or self._timeout == 0
        limit = None if nowait else lock_timeout_value(self._timeout)
        statement = LockTableStatement(self._tables, mode, nowait)
        started = perf_counter()
        try:
            if nowait or limit is not None:
                acquired = await bounded_attempt(
                    session, owner, statement, {}, timeout=limit, restore=RESTORE_LOCK_TIMEOUT
                )
            else:
                await session.execute(statement)
                acquired = True
        except BaseException as exc:
            waited = perf_counter() - started
            emit_not_acquired(owner, display, waited, "table", shared, engine)
            missing = _UNDEFINED.get(sqlstate_of(exc) or "")
            if missing is not None:
                raise self._not_found(exc, missing) from exc
            raise_translated(owner, exc, engine)
            raise
        now = perf_counter()
        if not acquired:
            emit_not_acquired(owner, display, now - started, "table", shared, engine)
            why = "not free (NOWAIT)" if nowait else f"still held after {self._timeout}s"
            raise not_acquired(
                display,
                "table",
                shared,
                0 if nowait else self._timeout,
                why,
                what=f"{mode.value} table lock on",
            )
        emit_acquired(owner, display, now - started, "table", shared, engine)
        track_until_transaction_end(session, owner, display, "table", shared, now)
        return session

    def _not_found(self, exc: BaseException, missing: str) -> TableNotFoundError:
        orig = getattr(exc, "orig", None)
        server = str(orig if orig is not None else exc).strip().splitlines()[0]
        return TableNotFoundError(
            f"lock_tables(): a {missing} does not exist ({server}); the tables asked for "
            f"were {', '.join(self._names)}. Check the names and schemas: they are quoted "
            "and used exactly as given, never as SQL",
            tables=self._names,
            sqlstate=sqlstate_of(exc),
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Table locks last until the transaction ends; PostgreSQL has no UNLOCK TABLE.
        return None


def lock_tables(
    session: AsyncSession,
    tables: Sequence[TableLike] | TableLike,
    mode: LockModeLike = LockMode.SHARE_UPDATE_EXCLUSIVE,
    *,
    timeout: float | None = None,
    nowait: bool = False,
) -> TableLock:
    """Lock tables until the transaction ends; use it as ``async with ... as session``.

    Sends one ``LOCK TABLE a, b IN <mode> MODE``. Tables are ORM classes, ``Table``
    objects or names (``"events"``, ``"audit.events"``); every identifier is quoted by
    SQLAlchemy's identifier preparer, so tables named ``order`` or ``MixedCase`` work,
    and a name carrying SQL is only a table that does not exist
    (:class:`TableNotFoundError`). Yields the session.

    With ``timeout`` or ``nowait``, the attempt runs inside a savepoint (``lock_timeout``
    bound for it alone and put back afterwards): when the lock is not had,
    :class:`LockNotAcquiredError` (a ``LockNotAvailableError``) is raised and the
    transaction stays usable. Without them, the wait is bounded only by the
    transaction's own ``lock_timeout``.

    Args:
        session: A session inside a transaction.
        tables: One table argument or a sequence of them.
        mode: A :class:`LockMode` or its name; the default, ``SHARE UPDATE EXCLUSIVE``,
            is the reference kit's.
        timeout: Seconds to wait at most; None waits, 0 is ``nowait``.
        nowait: Fail at once if any table is locked in a conflicting mode.

    Raises:
        LockNotAcquiredError: Not acquired within ``timeout`` / at once with ``nowait``.
        TableNotFoundError: A table or schema does not exist.
        TableNameError: A table argument is not one, or a name is empty or too long.
        LockModeError: Not one of the eight modes.
        TransactionRequiredError: The session is not in a transaction.
    """
    chosen = parse_lock_mode(mode)
    if nowait and timeout is not None:
        raise ConfigurationError("give lock_tables() nowait=True or a timeout, not both")
    lock_timeout_value(timeout)
    items: list[TableLike] = (
        list(tables) if isinstance(tables, Sequence) and not isinstance(tables, str) else [tables]
    )
    if not items:
        raise TableNameError("lock_tables() needs at least one table")
    clauses = [clause for item in items for clause in table_clauses(item)]
    return TableLock(session, clauses, chosen, timeout, nowait)
