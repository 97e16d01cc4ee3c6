"""Per-test isolation of ``fkit_manager``: one rolled-back transaction, or truncation.

Rollback (the default): the manager's sessionmakers are bound to one connection with an
open transaction and ``join_transaction_mode="create_savepoint"``, so every transaction
the code under test runs, and every ``commit()``, is a savepoint inside it; the
transaction is rolled back after the test. Truncation (``@pytest.mark.fkit_truncate``):
the code runs normally, commits for real, and every table is emptied after the test.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from fkit_core import AsyncSessionManager

__all__ = ["Isolation", "IsolationMode"]

logger = logging.getLogger("fkit_testing.isolation")

IsolationMode = Literal["rollback", "truncate"]


class Isolation:
    """Sets up and undoes one test's isolation on a started manager."""

    def __init__(self, manager: AsyncSessionManager, mode: IsolationMode) -> None:
        self.manager = manager
        self.mode: IsolationMode = mode
        self.connection: AsyncConnection | None = None
        # The URL is taken now: after the test the manager may be closed.
        self._url = manager.engine.url

    async def begin(self) -> None:
        """Bind the manager's sessions to a connection in a transaction (rollback mode)."""
        if self.mode != "rollback":
            return
        conn = await self.manager.engine.connect()
        try:
            await conn.begin()
            self.manager.configure_sessions(bind=conn, join_transaction_mode="create_savepoint")
        except BaseException:
            await conn.close()
            raise
        self.connection = conn

    async def finish(self, close_timeout: float) -> None:
        """Undo the test's writes and close the manager.

        Rollback mode rolls back first (nothing the test left open can commit any more),
        then closes; truncate mode closes first (the test's sessions end), then truncates.
        """
        if self.mode == "rollback":
            try:
                await self._rollback()
            finally:
                await self.manager.close(close_timeout)
        else:
            try:
                await self.manager.close(close_timeout)
            finally:
                await self._truncate()

    async def _rollback(self) -> None:
        conn, self.connection = self.connection, None
        if conn is None:
            return
        try:
            if conn.in_transaction():
                await conn.rollback()
        except Exception:
            # A test that broke the connection (pg_terminate_backend, say): the server
            # rolled the transaction back already; this connection must not be reused.
            logger.debug("rolling back the test transaction failed", exc_info=True)
            await conn.invalidate()
        finally:
            await conn.close()

    async def _truncate(self) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        from fkit_testing._dbadmin import truncate_tables

        # A connection of its own: the test may have closed its manager.
        engine = create_async_engine(self._url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                # A session the test left open would make TRUNCATE wait for ever.
                await conn.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
                await truncate_tables(conn)
        finally:
            await engine.dispose()
