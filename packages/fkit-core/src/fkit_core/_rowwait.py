"""Polling a row until some of its columns change."""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from fkit_core.errors import ConfigurationError, RowChangeTimeoutError, RowNotFoundError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core._manager import AsyncSessionManager

__all__ = ["wait_for_row_change"]

M = TypeVar("M")


def _column_keys(model: type[Any], columns: Sequence[Any] | None) -> list[str]:
    mapper = sa_inspect(model)
    known = set(mapper.column_attrs.keys())
    keys = [getattr(c, "key", c) for c in columns] if columns else sorted(known)
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ConfigurationError(
            f"{model.__name__} has no column attribute {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(sorted(known))}"
        )
    return keys


async def _read(
    source: AsyncSession | AsyncSessionManager, statement: Any
) -> tuple[Any, AsyncSession | None]:
    """One poll of committed data; returns the row and a session whose read must be ended.

    With a manager every poll uses a new session. With a session, a poll outside a
    transaction opens one, which the caller ends (rollback) unless it returns the row:
    ending it would expire the row's attributes.
    """
    if hasattr(source, "get_session"):
        async with source.get_session() as fresh:
            return (await fresh.execute(statement)).scalar_one_or_none(), None
    session: AsyncSession = source
    opened_here = not session.in_transaction()
    row = (await session.execute(statement)).scalar_one_or_none()
    return row, session if opened_here else None


def _pk_filter(model: type[Any], pk_value: Any) -> dict[str, Any]:
    keys = [c.key for c in sa_inspect(model).primary_key]
    values = pk_value if isinstance(pk_value, tuple) else (pk_value,)
    if len(values) != len(keys):
        raise ConfigurationError(
            f"{model.__name__}'s primary key has {len(keys)} columns ({', '.join(keys)}); "
            f"got {pk_value!r}"
        )
    return dict(zip(keys, values, strict=True))


async def wait_for_row_change(
    session: AsyncSession | AsyncSessionManager,
    model: type[M],
    pk_value: Any,
    columns: Sequence[Any] | None = None,
    interval: float = 0.5,
    timeout: float = 30.0,
) -> M:
    """Wait until one of ``columns`` of a row differs from its value at the call.

    Args:
        session: A session or a session manager. With a session, run this outside of a
            transaction (or in READ COMMITTED): a REPEATABLE READ snapshot never changes.
        model: The mapped class.
        pk_value: The primary key (a tuple for composite keys).
        columns: Column attributes or their names; all columns when None.
        interval: Seconds between polls.
        timeout: Seconds before giving up; a change committed before the deadline is
            reported, never a timeout.

    Returns:
        The row as it is after the change.

    Raises:
        RowNotFoundError: The row does not exist, or was deleted while waiting.
        RowChangeTimeoutError: Nothing changed before the deadline.
    """
    if interval <= 0 or timeout < 0:
        raise ConfigurationError(
            f"interval must be positive and timeout not negative; got {interval=}, {timeout=}"
        )
    keys = _column_keys(model, columns)
    # populate_existing: each read overwrites what the identity map holds for the row.
    statement = (
        select(model)
        .filter_by(**_pk_filter(model, pk_value))
        .execution_options(populate_existing=True)
    )
    deadline = monotonic() + timeout
    row, to_end = await _read(session, statement)
    if row is None:
        raise RowNotFoundError(f"{model.__name__} with primary key {pk_value!r} does not exist")
    before = {key: getattr(row, key) for key in keys}
    while True:
        if to_end is not None:
            await to_end.rollback()
        remaining = deadline - monotonic()
        await asyncio.sleep(max(0.0, min(interval, remaining)))
        row, to_end = await _read(session, statement)
        if row is None:
            raise RowNotFoundError(
                f"{model.__name__} with primary key {pk_value!r} was deleted while waiting"
            )
        if any(getattr(row, key) != value for key, value in before.items()):
            result: M = row
            return result
        if monotonic() >= deadline:
            if to_end is not None:
                await to_end.rollback()
            raise RowChangeTimeoutError(
                f"{model.__name__} {pk_value!r}: none of {', '.join(keys)} "
                f"changed within {timeout}s"
            )
