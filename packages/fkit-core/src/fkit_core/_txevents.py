"""What every transaction reports: start and end events, scope hooks, translated errors."""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, NoReturn

from fkit_core._bus import TransactionScope
from fkit_core._translate import translate_error
from fkit_core.errors import CommitOutcomeUnknownError, ConnectionLostError
from fkit_core.events import (
    DatabaseErrorOccurred,
    TransactionEnded,
    TransactionKind,
    TransactionOutcome,
    TransactionStarted,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core._owner import WorkOwner

__all__ = ["enter_transaction", "exit_transaction", "raise_commit_failure", "raise_translated"]


def raise_translated(owner: WorkOwner, exc: BaseException, engine_name: str) -> None:
    """Raise the fkit translation of ``exc`` chained to it, emitting ``DatabaseErrorOccurred``.

    Returns normally when ``exc`` is not a database error, so the caller re-raises it::

        except Exception as exc:
            raise_translated(owner, exc, engine_name_of(session))
            raise

    Args:
        owner: Where the event goes (:func:`owner_of` the session).
        exc: What the driver or SQLAlchemy raised.
        engine_name: The engine the statement ran on (:func:`engine_name_of`).
    """
    translated = translate_error(exc)
    if translated is None:
        return
    bus = owner.bus
    if bus.wants(DatabaseErrorOccurred):
        sqlstate = getattr(translated, "sqlstate", None)
        bus.emit(
            DatabaseErrorOccurred(
                owner.name,
                engine_name,
                type(translated).__name__,
                sqlstate,
                sqlstate[:2] if sqlstate else None,
            )
        )
    raise translated from exc


def raise_commit_failure(owner: WorkOwner, exc: BaseException, engine_name: str) -> NoReturn:
    """Raise a failed COMMIT's error: ``CommitOutcomeUnknownError`` if the connection broke.

    A COMMIT whose connection broke may have reached the server, so it must never be
    re-run blindly; any other failure is raised translated, like every error.
    """
    translated = translate_error(exc)
    if isinstance(translated, ConnectionLostError):
        raise CommitOutcomeUnknownError(
            "the connection was lost during COMMIT, so the transaction may or may not "
            f"have been committed ({translated}); check before re-running the work",
            sqlstate=translated.sqlstate,
        ) from exc
    if isinstance(exc, TimeoutError):
        # A client-side deadline (asyncpg's command_timeout) that expires while COMMIT
        # is on its way leaves the outcome just as open as a broken connection does.
        raise CommitOutcomeUnknownError(
            "COMMIT got no answer before a client-side timeout, so the transaction may or "
            "may not have been committed; check before re-running the work"
        ) from exc
    raise_translated(owner, exc, engine_name)
    raise exc


def enter_transaction(
    owner: WorkOwner,
    session: AsyncSession,
    engine_name: str,
    kind: TransactionKind,
    isolation_level: str | None,
    readonly: bool,
    nested: bool,
) -> AbstractContextManager[None] | None:
    """Emit ``TransactionStarted`` and enter the scope hooks; returns the entered scope."""
    bus = owner.bus
    if bus.wants(TransactionStarted):
        bus.emit(
            TransactionStarted(owner.name, engine_name, kind, isolation_level, readonly, nested)
        )
    if not bus.has_scope_hooks:
        return None
    scope = bus.scope(
        TransactionScope(owner.name, engine_name, kind, isolation_level, readonly, nested, session)
    )
    scope.__enter__()
    return scope


def exit_transaction(
    owner: WorkOwner,
    scope: AbstractContextManager[None] | None,
    exc: BaseException | None,
    started: float,
    outcome: TransactionOutcome,
    engine_name: str,
    kind: TransactionKind,
    isolation_level: str | None,
    readonly: bool,
    nested: bool,
) -> None:
    """Exit the scope hooks with the exception that ended the transaction; emit its end."""
    if scope is not None:
        if exc is None:
            scope.__exit__(None, None, None)
        else:
            scope.__exit__(type(exc), exc, exc.__traceback__)
    bus = owner.bus
    if bus.wants(TransactionEnded):
        bus.emit(
            TransactionEnded(
                owner.name,
                engine_name,
                kind,
                isolation_level,
                readonly,
                nested,
                outcome,
                perf_counter() - started,
                type(exc).__name__ if exc is not None else None,
            )
        )
