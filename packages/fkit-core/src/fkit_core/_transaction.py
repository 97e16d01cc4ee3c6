"""The transaction runner every fkit transaction goes through (manager and Unit of Work).

It owns the exact semantics: begin with the requested characteristics, commit on
success, roll back on an exception or a cancellation, raise a failed COMMIT to the
caller, translate driver errors, emit bus events, run scope hooks, and count the work
as in flight so that ``close()`` can drain it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from fkit_core._engine import READ_UNCOMMITTED_OPTION, begins_read_uncommitted
from fkit_core._isolation import IsolationLevel
from fkit_core._owner import ENGINE_INFO_KEY, WorkOwner
from fkit_core._txevents import (
    enter_transaction,
    exit_transaction,
    raise_commit_failure,
    raise_translated,
)
from fkit_core.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core.events import TransactionKind, TransactionOutcome

__all__ = ["ManagedTransaction", "TransactionSpec"]

logger = logging.getLogger("fkit_core.transaction")


def _milliseconds(name: str, seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 0:
        raise ConfigurationError(
            f"{name}={seconds!r} must be 0 (no limit) or a positive number of seconds"
        )
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True, slots=True)
class TransactionSpec:
    """The characteristics of one transaction, validated once when it is requested."""

    kind: TransactionKind = "transaction"
    isolation_level: IsolationLevel | None = None
    readonly: bool = False
    deferrable: bool | None = None
    statement_timeout: float | None = None
    lock_timeout: float | None = None
    commit_on_exit: bool = True
    flush_before_commit: bool = False

    def execution_options(self, option_for_read_uncommitted: bool) -> dict[str, Any] | None:
        """SQLAlchemy execution options that begin the transaction, or None for none."""
        options: dict[str, Any] = {}
        level = self.isolation_level
        if level is IsolationLevel.READ_UNCOMMITTED:
            if option_for_read_uncommitted:
                options[READ_UNCOMMITTED_OPTION] = True
        elif level is not None:
            # SQLAlchemy resets the level when the connection returns to the pool.
            options["isolation_level"] = level.value
        if self.readonly:
            options["postgresql_readonly"] = True
        if self.deferrable is not None:
            options["postgresql_deferrable"] = self.deferrable
        return options or None

    def local_settings(self) -> dict[str, str]:
        """Server settings for this transaction only (``set_config(..., true)``)."""
        if self.statement_timeout is None and self.lock_timeout is None:
            return {}  # the common case, on every transaction: nothing to build
        found = {
            "statement_timeout": _milliseconds("statement_timeout", self.statement_timeout),
            "lock_timeout": _milliseconds("lock_timeout", self.lock_timeout),
        }
        return {name: value for name, value in found.items() if value is not None}


_SET_CONFIG = {
    1: text("SELECT set_config(:n0, :v0, true)"),
    2: text("SELECT set_config(:n0, :v0, true), set_config(:n1, :v1, true)"),
}
_READ_UNCOMMITTED = text("SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
_READ_ONLY_SAVEPOINT = text("SET LOCAL transaction_read_only = on")


T = TypeVar("T")


class ManagedTransaction(Generic[T]):
    """An async context manager around one session's transaction.

    ``async with`` yields the session (``ManagedTransaction[AsyncSession]``), or what
    ``wrap`` builds from it (the Unit of Work's transaction objects).

    Not constructed directly: use ``manager.get_transaction()`` or the Unit of Work.

    Args:
        owner: The manager (or :data:`DETACHED`).
        session: A fresh session.
        spec: The transaction's characteristics.
        wrap: Builds what ``async with`` yields from the session (the session itself
            when None); the Unit of Work yields its transaction objects this way.
        reroute: Called when beginning fails, with the engine name and the error; returns
            a fresh session on another engine to try instead, or None to give up. Replica
            reads use it to move on to the next replica or to the primary.
    """

    __slots__ = (
        "_committed",
        "_engine_name",
        "_joined",
        "_owner",
        "_reroute",
        "_scope",
        "_spec",
        "_started",
        "_token",
        "_wrap",
        "session",
    )

    def __init__(
        self,
        owner: WorkOwner,
        session: AsyncSession,
        spec: TransactionSpec,
        *,
        wrap: Callable[[AsyncSession], Any] | None = None,
        reroute: Callable[[str, BaseException], AsyncSession | None] | None = None,
    ) -> None:
        self._owner = owner
        self._wrap = wrap
        self._reroute = reroute
        self.session = session
        self._spec = spec
        self._engine_name: str = session.info.get(ENGINE_INFO_KEY, "primary")
        self._scope: AbstractContextManager[None] | None = None
        self._started = 0.0
        self._token: object | None = None
        self._committed: list[bool] | None = None
        self._joined = False

    async def _begin(self) -> None:
        spec = self._spec
        session = self.session
        # Open the ORM transaction now (no I/O: the connection comes with the first
        # statement), so code in the body sees `session.in_transaction()` and nests
        # savepoints inside it instead of committing on its own.
        session.sync_session.begin()
        bind = session.get_bind()
        # A session bound to a connection that is already in a transaction joins it
        # (join_transaction_mode="create_savepoint": rollback-per-test isolation). Its
        # isolation level cannot change any more; READ ONLY holds for the savepoint only.
        self._joined = isinstance(bind, Connection) and bind.in_transaction()
        by_option = begins_read_uncommitted(bind)  # type: ignore[arg-type]
        options = None if self._joined else spec.execution_options(by_option)
        if self._joined and spec.readonly:
            await session.execute(_READ_ONLY_SAVEPOINT)
        if options:
            # Characteristics are set when the connection is procured, before BEGIN.
            await session.connection(execution_options=options)
        if (
            spec.isolation_level is IsolationLevel.READ_UNCOMMITTED
            and not by_option
            and not self._joined
        ):
            await session.execute(_READ_UNCOMMITTED)
        settings = spec.local_settings()
        if settings:
            # Bound, never pasted; local to this transaction, so nothing leaks into the
            # next transaction that reuses the pooled connection.
            params: dict[str, str] = {}
            for i, (name, value) in enumerate(settings.items()):
                params[f"n{i}"], params[f"v{i}"] = name, value
            await session.execute(_SET_CONFIG[len(settings)], params)

    async def __aenter__(self) -> T:
        owner = self._owner
        spec = self._spec
        self._token = owner.enter_work()
        self._started = perf_counter()
        while True:
            try:
                await self._begin()
                break
            except BaseException as exc:
                other = self._reroute(self._engine_name, exc) if self._reroute is not None else None
                if other is not None and isinstance(exc, Exception):
                    await self._rollback_quietly()
                    await self.session.close()
                    self.session = other
                    self._engine_name = other.info.get(ENGINE_INFO_KEY, "primary")
                    continue
                await self._finish(exc, "error" if isinstance(exc, Exception) else "cancelled")
                raise_translated(owner, exc, self._engine_name)
                raise
        if spec.kind == "managed_session":
            committed: list[bool] = []
            self._committed = committed
            event.listen(
                self.session.sync_session, "after_commit", lambda _s: committed.append(True)
            )
        iso = spec.isolation_level.value if spec.isolation_level is not None else None
        self._scope = enter_transaction(
            owner, self.session, self._engine_name, spec.kind, iso, spec.readonly, False
        )
        value: T = self.session if self._wrap is None else self._wrap(self.session)  # type: ignore[assignment]
        return value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            await self._finish(
                exc, "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            )
            raise_translated(self._owner, exc, self._engine_name)
            return
        if not self._spec.commit_on_exit:
            await self._finish(None, "commit" if self._committed else "rollback")
            return
        session = self.session
        # In a joined transaction a READ ONLY savepoint is rolled back, not released: it
        # has nothing to commit, and releasing it would keep the outer one read-only.
        joined_readonly = self._joined and self._spec.readonly
        pending = bool(session.new or session.dirty or session.deleted)
        if (self._spec.flush_before_commit and pending) or joined_readonly:
            try:
                # Flushing first keeps flush failures (nothing sent to COMMIT yet, safe
                # to retry) apart from failures of the COMMIT itself.
                await session.flush()
            except BaseException as flush_exc:
                await self._finish(flush_exc, "error")
                raise_translated(self._owner, flush_exc, self._engine_name)
                raise
        if joined_readonly:
            await self._finish(None, "commit")
            return
        try:
            await session.commit()
        except BaseException as commit_exc:
            await self._finish(commit_exc, "error")
            raise_commit_failure(self._owner, commit_exc, self._engine_name)
        await self._finish(None, "commit")

    async def _finish(self, exc: BaseException | None, outcome: TransactionOutcome) -> None:
        """Roll back what is left, close the session, exit hooks, emit the end event."""
        session = self.session
        try:
            if outcome != "commit" or session.in_transaction():
                await self._rollback_quietly()
            await session.close()
        finally:
            scope, self._scope = self._scope, None
            owner = self._owner
            owner.leave_work(self._token)
            spec = self._spec
            exit_transaction(
                owner,
                scope,
                exc,
                self._started,
                outcome,
                self._engine_name,
                spec.kind,
                spec.isolation_level.value if spec.isolation_level is not None else None,
                spec.readonly,
                False,
            )

    async def _rollback_quietly(self) -> None:
        # The rollback runs while an exception (maybe a cancellation) is already on its way;
        # its own failure must not replace that exception. A connection that cannot roll
        # back is invalidated so the pool never hands it out again.
        session = self.session
        try:
            await session.rollback()
        except BaseException as exc:
            logger.warning("rollback failed; invalidating the connection", exc_info=True)
            try:
                await session.invalidate()
            except Exception:
                logger.debug("invalidate after a failed rollback failed too", exc_info=True)
            if isinstance(exc, asyncio.CancelledError):
                raise  # a second cancellation during rollback: honour it
