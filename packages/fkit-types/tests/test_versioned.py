"""VersionedMixin: a concurrent stale update fails with fkit's StaleDataError."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import MetaData, String, text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm import exc as orm_exc

from fkit_core.errors import FkitError
from fkit_types import (
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    StaleDataError,
    VersionedMixin,
)

from .conftest import create_tables

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager

HANG_GUARD = 30  # seconds; only to fail instead of hanging if something deadlocks


class Base(BaseTable):
    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Stock(IdentityPrimaryKeyMixin, VersionedMixin, Base):
    __tablename__ = "stock"

    sku: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int]


async def _stock(manager: AsyncSessionManager) -> int:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        stock = Stock(sku="a", quantity=10)
        session.add(stock)
    assert stock.version == 1
    return stock.id


async def _row(manager: AsyncSessionManager, stock_id: int) -> tuple[int, int]:
    async with manager.get_transaction() as session:
        row = await session.execute(
            text("SELECT quantity, version FROM stock WHERE id = :id"), {"id": stock_id}
        )
        quantity, version = row.one()
        return quantity, version


@pytest.mark.asyncio
async def test_updates_increment_the_version(manager: AsyncSessionManager) -> None:
    stock_id = await _stock(manager)
    for expected in (2, 3):
        async with manager.get_transaction() as session:
            stock = await session.get(Stock, stock_id)
            assert stock is not None
            stock.quantity -= 1
        assert stock.version == expected
    assert await _row(manager, stock_id) == (8, 3)


@pytest.mark.asyncio
async def test_a_concurrent_stale_update_raises_fkit_stale_data_error(
    manager: AsyncSessionManager,
) -> None:
    stock_id = await _stock(manager)
    both_loaded = asyncio.Barrier(2)
    a_flushed = asyncio.Event()
    a_may_commit = asyncio.Event()
    b_pid: list[int] = []

    async def writer_a() -> None:
        async with manager.get_transaction() as session:
            stock = await session.get(Stock, stock_id)
            assert stock is not None
            await both_loaded.wait()
            stock.quantity = 5
            await session.flush()  # holds the row lock until commit
            a_flushed.set()
            await a_may_commit.wait()

    async def writer_b() -> None:
        async with manager.get_transaction() as session:
            b_pid.append(await session.scalar(text("SELECT pg_backend_pid()")))
            stock = await session.get(Stock, stock_id)
            assert stock is not None
            await both_loaded.wait()
            await a_flushed.wait()
            stock.quantity = 7
            await session.flush()  # blocks on A's lock, then finds version 2, not 1

    async def b_is_blocked_on_a() -> None:
        while True:
            async with manager.get_transaction() as session:
                waiting = await session.scalar(
                    text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": b_pid[0]},
                )
            if waiting:
                return
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        task_a = asyncio.create_task(writer_a())
        task_b = asyncio.create_task(writer_b())
        await a_flushed.wait()
        await b_is_blocked_on_a()  # a real race: B's UPDATE is waiting inside the server
        a_may_commit.set()
        await task_a
        with pytest.raises(StaleDataError) as info:
            await task_b
        error = info.value
        assert isinstance(error, FkitError)
        assert isinstance(error, orm_exc.StaleDataError)  # existing except clauses still work
        assert type(error.__cause__) is orm_exc.StaleDataError
        assert "table 'stock'" in str(error)
        assert "Reload the object and apply the change again" in str(error)

    await asyncio.wait_for(scenario(), HANG_GUARD)
    assert await _row(manager, stock_id) == (5, 2)  # A's change, B's was refused


@pytest.mark.asyncio
async def test_a_stale_update_after_the_other_committed(manager: AsyncSessionManager) -> None:
    stock_id = await _stock(manager)
    with pytest.raises(StaleDataError):
        async with manager.get_transaction() as session_b:
            stale = await session_b.get(Stock, stock_id)
            assert stale is not None
            async with manager.get_transaction() as session_a:
                fresh = await session_a.get(Stock, stock_id)
                assert fresh is not None
                fresh.quantity = 1
            stale.quantity = 2  # flushed by the commit as the block ends: refused there
    assert await _row(manager, stock_id) == (1, 2)


@pytest.mark.asyncio
async def test_deleting_a_stale_row_raises_too(manager: AsyncSessionManager) -> None:
    stock_id = await _stock(manager)
    with pytest.raises(StaleDataError):
        async with manager.get_transaction() as session_b:
            stale = await session_b.get(Stock, stock_id)
            assert stale is not None
            async with manager.get_transaction() as session_a:
                fresh = await session_a.get(Stock, stock_id)
                assert fresh is not None
                fresh.quantity = 0
            await session_b.delete(stale)
    assert await _row(manager, stock_id) == (0, 2)
