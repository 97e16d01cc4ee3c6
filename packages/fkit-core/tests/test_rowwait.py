"""wait_for_row_change: polls committed data until a column changes, honouring its deadline."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from fkit_core_test_models import Account
from sqlalchemy import update

from fkit_core import AsyncSessionManager, ConfigurationError, wait_for_row_change
from fkit_core.errors import RowChangeTimeoutError, RowNotFoundError

pytestmark = pytest.mark.usefixtures("tables")


@pytest_asyncio.fixture
async def account(manager: AsyncSessionManager) -> int:
    async with manager.get_transaction() as s:
        s.add(Account(id=1, owner="ada", balance=100))
    return 1


async def _set(manager: AsyncSessionManager, delay: float, **values: object) -> None:
    await asyncio.sleep(delay)
    async with manager.get_transaction() as s:
        await s.execute(update(Account).where(Account.id == 1).values(**values))


@pytest.mark.asyncio
async def test_returns_the_row_once_a_watched_column_changes(
    manager: AsyncSessionManager, account: int
) -> None:
    writer = asyncio.create_task(_set(manager, 0.2, balance=150))
    row = await asyncio.wait_for(
        wait_for_row_change(
            manager, Account, account, [Account.balance], interval=0.05, timeout=10
        ),
        30,
    )
    await writer
    assert row.balance == 150


@pytest.mark.asyncio
async def test_with_a_session_each_poll_sees_fresh_committed_data(
    manager: AsyncSessionManager, account: int
) -> None:
    writer = asyncio.create_task(_set(manager, 0.2, owner="ada lovelace"))
    async with manager.get_session() as session:
        row = await wait_for_row_change(
            session, Account, account, ["owner"], interval=0.05, timeout=10
        )
        assert row.owner == "ada lovelace"
    await writer


@pytest.mark.asyncio
async def test_unwatched_columns_do_not_count(manager: AsyncSessionManager, account: int) -> None:
    writer = asyncio.create_task(_set(manager, 0.05, owner="someone else"))
    with pytest.raises(RowChangeTimeoutError, match="balance"):
        await wait_for_row_change(
            manager, Account, account, ["balance"], interval=0.05, timeout=0.5
        )
    await writer


@pytest.mark.asyncio
async def test_a_change_before_the_deadline_is_reported_even_between_polls(
    manager: AsyncSessionManager, account: int
) -> None:
    # Polls every 60 s but the deadline is 1 s away: the last poll happens at the
    # deadline, and sees the change committed in between.
    writer = asyncio.create_task(_set(manager, 0.2, balance=1))
    row = await asyncio.wait_for(
        wait_for_row_change(manager, Account, account, ["balance"], interval=60, timeout=1.0), 30
    )
    await writer
    assert row.balance == 1


@pytest.mark.asyncio
async def test_missing_and_deleted_rows_are_not_found(
    manager: AsyncSessionManager, account: int
) -> None:
    with pytest.raises(RowNotFoundError, match="does not exist"):
        await wait_for_row_change(manager, Account, 999, interval=0.05, timeout=1)

    async def delete_soon() -> None:
        await asyncio.sleep(0.1)
        async with manager.get_transaction() as s:
            await s.delete(await s.get(Account, 1))

    deleter = asyncio.create_task(delete_soon())
    with pytest.raises(RowNotFoundError, match="deleted"):
        await wait_for_row_change(manager, Account, account, interval=0.05, timeout=10)
    await deleter


@pytest.mark.asyncio
async def test_bad_arguments(manager: AsyncSessionManager, account: int) -> None:
    with pytest.raises(ConfigurationError, match="no column attribute 'colour'"):
        await wait_for_row_change(manager, Account, account, ["colour"])
    with pytest.raises(ConfigurationError, match="interval"):
        await wait_for_row_change(manager, Account, account, interval=0)
    with pytest.raises(ConfigurationError, match="primary key has 1 columns"):
        await wait_for_row_change(manager, Account, (1, 2))
