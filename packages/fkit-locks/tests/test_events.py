"""Lock events on the manager's bus, and when transaction-scoped locks count as released."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fkit_core import AsyncSQLAlchemyUnitOfWork
from fkit_core.events import LockAcquired, LockNotAcquired, LockReleased
from fkit_locks import (
    LockNotAcquiredError,
    advisory_xact_lock,
    lock_key,
    try_advisory_xact_lock,
)
from fkit_locks._events import HELD_INFO_KEY

if TYPE_CHECKING:
    from collections.abc import Callable

    from fkit_locks_test_helpers import LockView

    from fkit_core import AsyncSessionManager
    from fkit_core.events import Event


def lock_events(events: list[Event]) -> list[tuple[str, str, str, bool]]:
    kinds = (LockAcquired, LockNotAcquired, LockReleased)
    return [
        (type(e).__name__, e.key, e.scope, e.shared)  # type: ignore[attr-defined]
        for e in events
        if isinstance(e, kinds)
    ]


@pytest.mark.asyncio
async def test_a_transaction_lock_is_reported_released_when_the_transaction_commits(
    manager: AsyncSessionManager, events: list[Event], key: int
) -> None:
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, key, shared=True)
        assert lock_events(events) == [("LockAcquired", str(key), "transaction", True)]
    assert lock_events(events)[1:] == [("LockReleased", str(key), "transaction", True)]
    (acquired,) = [e for e in events if isinstance(e, LockAcquired)]
    (released,) = [e for e in events if isinstance(e, LockReleased)]
    assert acquired.wait_seconds >= 0
    assert released.held_seconds >= 0
    assert acquired.manager == released.manager == "default"


@pytest.mark.asyncio
async def test_and_when_it_rolls_back(
    manager: AsyncSessionManager, events: list[Event], key: int
) -> None:
    with pytest.raises(KeyError):
        async with manager.get_transaction() as session, advisory_xact_lock(session, key):
            raise KeyError
    assert [e[0] for e in lock_events(events)] == ["LockAcquired", "LockReleased"]


@pytest.mark.asyncio
async def test_a_lock_from_a_rolled_back_savepoint_is_reported_at_the_rollback(
    manager: AsyncSessionManager, events: list[Event], locks: LockView, key: int
) -> None:
    async with manager.get_transaction() as session:
        savepoint = await session.begin_nested()
        assert await try_advisory_xact_lock(session, key)
        await savepoint.rollback()
        assert [e[0] for e in lock_events(events)] == ["LockAcquired", "LockReleased"]
        assert await locks.advisory(key) == []  # what PostgreSQL did too


@pytest.mark.asyncio
async def test_a_lock_from_a_released_savepoint_is_reported_at_the_commit(
    manager: AsyncSessionManager, events: list[Event], locks: LockView, key: int
) -> None:
    async with manager.get_transaction() as session:
        async with session.begin_nested(), session.begin_nested():
            assert await try_advisory_xact_lock(session, key)
        assert [e[0] for e in lock_events(events)] == ["LockAcquired"]
        assert len(await locks.holders(key)) == 1
    assert [e[0] for e in lock_events(events)] == ["LockAcquired", "LockReleased"]


@pytest.mark.asyncio
async def test_every_lock_of_the_transaction_is_reported_once(
    manager: AsyncSessionManager, events: list[Event], key: int
) -> None:
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, key)
        assert await try_advisory_xact_lock(session, (1, key % 1000))
    async with manager.get_transaction() as session:  # the next one starts clean
        pass
    released = [e for e in lock_events(events) if e[0] == "LockReleased"]
    assert [e[1] for e in released] == [str(key), f"1,{key % 1000}"]


@pytest.mark.asyncio
async def test_refusals_and_timeouts_are_reported(
    manager: AsyncSessionManager, events: list[Event], key: int
) -> None:
    async with manager.get_transaction() as holder:
        assert await try_advisory_xact_lock(holder, key)
        async with manager.get_transaction() as session:
            assert not await try_advisory_xact_lock(session, key)
            with pytest.raises(LockNotAcquiredError):
                async with advisory_xact_lock(session, key, timeout=0.02):
                    pass
    refused = [e for e in events if isinstance(e, LockNotAcquired)]
    assert [(e.key, e.scope) for e in refused] == [(str(key), "transaction")] * 2
    assert all(e.wait_seconds >= 0 for e in refused)


@pytest.mark.asyncio
async def test_events_carry_the_number_never_the_parts_of_the_key(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    secret = "reset-token:7f9a2c1b"
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, ("password-reset", secret))
    keys = {e[1] for e in lock_events(events)}
    assert keys == {str(lock_key("password-reset", secret))}
    assert not any(secret in repr(e) for e in events)


@pytest.mark.asyncio
async def test_nothing_is_tracked_when_nobody_wants_released_events(
    manager: AsyncSessionManager, key: int
) -> None:
    acquired: list[Event] = []
    manager.bus.subscribe(LockAcquired, acquired.append)
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, key)
        assert HELD_INFO_KEY not in session.info
    assert len(acquired) == 1


@pytest.mark.asyncio
async def test_a_failing_subscriber_does_not_break_the_lock(
    manager: AsyncSessionManager, key: int
) -> None:
    def broken(_: Event) -> None:
        raise RuntimeError("subscriber bug")

    manager.bus.subscribe(LockAcquired, broken)
    manager.bus.subscribe(LockReleased, broken)
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, key)
    assert manager.bus.subscriber_errors == 2


@pytest.mark.asyncio
async def test_events_name_the_engine_the_lock_was_taken_on(
    make_manager: Callable[..., AsyncSessionManager], db_url: str, key: int
) -> None:
    manager = make_manager(replica_urls=[db_url])  # a "replica" that is the same server
    seen: list[Event] = []
    manager.bus.subscribe(LockAcquired, seen.append)
    manager.bus.subscribe(LockReleased, seen.append)
    async with AsyncSQLAlchemyUnitOfWork(manager).query(replica=True) as qx:
        assert await try_advisory_xact_lock(qx.session, key)
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, key)
    assert [(type(e).__name__, e.engine_name) for e in seen] == [  # type: ignore[attr-defined]
        ("LockAcquired", "replica-1"),
        ("LockReleased", "replica-1"),
        ("LockAcquired", "primary"),
        ("LockReleased", "primary"),
    ]
