"""Sessions joined to an outer transaction: ``configure_sessions`` and rollback-per-test.

fkit-testing binds a manager's sessionmakers to one connection whose transaction it rolls
back after each test; every fkit transaction must then run as a savepoint inside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from fkit_core import (
    AsyncSessionManager,
    AsyncSQLAlchemyUnitOfWork,
    create_db_context,
    get_transaction,
)
from fkit_core.errors import ManagerClosedError, ReadOnlyTransactionError
from fkit_core.events import TransactionEnded

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncConnection

TABLE = "joined_tx_notes"


@pytest_asyncio.fixture
async def outer(manager: AsyncSessionManager) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction, with every sessionmaker of ``manager`` bound to it."""
    conn = await manager.engine.connect()
    await conn.begin()
    await conn.execute(text(f"CREATE TABLE {TABLE} (body text)"))
    manager.configure_sessions(bind=conn, join_transaction_mode="create_savepoint")
    yield conn
    await conn.rollback()
    await conn.close()


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(text(f"SELECT count(*) FROM {TABLE}"))).scalar_one())


async def insert(session: object, body: str) -> None:
    await session.execute(text(f"INSERT INTO {TABLE} VALUES (:b)"), {"b": body})  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_every_kind_of_transaction_commits_into_the_outer_one(
    manager: AsyncSessionManager, outer: AsyncConnection, db_url: str
) -> None:
    async with manager.get_transaction() as session:
        await insert(session, "manager")
    uow: AsyncSQLAlchemyUnitOfWork = AsyncSQLAlchemyUnitOfWork(manager.session_maker)
    async with uow.transaction() as tx:
        await insert(tx.session, "uow")
    async with manager.get_session() as session, get_transaction(session):
        await insert(session, "get_transaction")
    async with create_db_context(manager)() as session:
        await insert(session, "db_context")
    async with manager.get_session() as session:
        await insert(session, "plain commit")
        await session.commit()
    # Committed: each was a savepoint, released into the outer transaction.
    assert await count(outer) == 5
    assert outer.in_transaction()
    # Nothing reached the database: other connections do not even see the table.
    other = create_async_engine(db_url)
    try:
        async with other.connect() as conn:
            exists = await conn.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": TABLE})
        assert exists is False
    finally:
        await other.dispose()


@pytest.mark.asyncio
async def test_a_failing_transaction_rolls_back_only_its_savepoint(
    manager: AsyncSessionManager, outer: AsyncConnection
) -> None:
    async with manager.get_transaction() as session:
        await insert(session, "kept")
    with pytest.raises(RuntimeError, match="boom"):
        async with manager.get_transaction() as session:
            await insert(session, "discarded")
            raise RuntimeError("boom")
    assert await count(outer) == 1


@pytest.mark.asyncio
async def test_readonly_holds_for_the_savepoint_only(
    manager: AsyncSessionManager, outer: AsyncConnection
) -> None:
    ended: list[TransactionEnded] = []
    manager.bus.subscribe(TransactionEnded, ended.append)
    uow: AsyncSQLAlchemyUnitOfWork = AsyncSQLAlchemyUnitOfWork(manager)
    async with uow.query() as qx:
        assert await qx.session.scalar(text("SHOW transaction_read_only")) == "on"
    with pytest.raises(ReadOnlyTransactionError):
        async with manager.get_transaction(readonly=True) as session:
            await insert(session, "refused")
    async with manager.get_transaction(readonly=True) as session:
        assert await session.scalar(text(f"SELECT count(*) FROM {TABLE}")) == 0
    assert ended[-1].outcome == "commit"
    # The outer transaction is read-write again, and the next transaction can write.
    assert await outer.scalar(text("SHOW transaction_read_only")) == "off"
    async with manager.get_transaction() as session:
        await insert(session, "after")
    assert await count(outer) == 1


@pytest.mark.asyncio
async def test_isolation_level_of_a_joined_transaction_is_the_outer_one(
    manager: AsyncSessionManager, outer: AsyncConnection
) -> None:
    async with manager.get_transaction("SERIALIZABLE", statement_timeout=5) as session:
        level = await session.scalar(text("SHOW transaction_isolation"))
        timeout = await session.scalar(text("SHOW statement_timeout"))
        await insert(session, "serializable requested")
    assert level == "read committed"
    assert timeout == "5s"
    assert await count(outer) == 1


@pytest.mark.asyncio
async def test_configure_sessions_refuses_a_closed_manager(db_url: str) -> None:
    manager = AsyncSessionManager(db_url, plugins=[], autoload=False)
    await manager.start()
    await manager.close()
    with pytest.raises(ManagerClosedError):
        manager.configure_sessions(expire_on_commit=True)
