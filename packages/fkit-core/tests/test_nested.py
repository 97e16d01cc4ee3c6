"""get_transaction(session): a transaction when none is open, a savepoint when one is."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest
from fkit_core_test_models import Account, Note
from sqlalchemy import select

from fkit_core import AsyncSessionManager, get_transaction, savepoint
from fkit_core.errors import CheckViolationError
from fkit_core.events import Event, TransactionEnded

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.usefixtures("tables")


async def open_account(session: AsyncSession, id: int, balance: int) -> None:
    """A service function: composes whether or not its caller holds a transaction."""
    async with get_transaction(session):
        session.add(Account(id=id, owner=f"owner-{id}", balance=balance))


async def open_two(session: AsyncSession) -> None:
    async with get_transaction(session):
        await open_account(session, 1, 10)
        with contextlib.suppress(CheckViolationError):
            await open_account(session, 2, -5)  # violates the CHECK: only this part fails
        await open_account(session, 3, 30)


async def _ids(manager: AsyncSessionManager) -> list[int]:
    async with manager.get_session() as s:
        return sorted((await s.execute(select(Account.id))).scalars())


@pytest.mark.asyncio
async def test_alone_it_commits(manager: AsyncSessionManager, events: list[Event]) -> None:
    async with manager.get_session() as session:
        await open_account(session, 7, 70)
        assert not session.in_transaction()
    assert await _ids(manager) == [7]
    ended = [e for e in events if isinstance(e, TransactionEnded)]
    assert [(e.kind, e.nested, e.outcome) for e in ended] == [("transaction", False, "commit")]


@pytest.mark.asyncio
async def test_inside_a_transaction_each_call_is_a_savepoint(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    async with manager.get_session() as session:
        await open_two(session)
    assert await _ids(manager) == [1, 3]
    ended = [(e.kind, e.outcome) for e in events if isinstance(e, TransactionEnded)]
    assert ended == [
        ("savepoint", "commit"),
        ("savepoint", "error"),
        ("savepoint", "commit"),
        ("transaction", "commit"),
    ]


@pytest.mark.asyncio
async def test_it_composes_inside_a_managed_transaction(manager: AsyncSessionManager) -> None:
    async with manager.get_transaction() as session:
        await open_two(session)
        session.add(Note(body="outer work"))
    assert await _ids(manager) == [1, 3]


@pytest.mark.asyncio
async def test_an_outer_failure_undoes_committed_savepoints(manager: AsyncSessionManager) -> None:
    with pytest.raises(LookupError):
        async with manager.get_transaction() as session:
            await open_account(session, 1, 10)
            raise LookupError("outer fails after the inner part released its savepoint")
    assert await _ids(manager) == []


@pytest.mark.asyncio
async def test_savepoint_opens_the_outer_transaction_if_needed(
    manager: AsyncSessionManager,
) -> None:
    async with manager.get_session() as session:
        async with savepoint(session):
            session.add(Account(id=4, owner="d", balance=4))
        assert session.in_transaction()
        await session.commit()
    assert await _ids(manager) == [4]
