"""Many real connections contending for one key.

Mutual exclusion is checked two ways at once: an in-process counter of holders (never
above one), and ``pg_locks`` as the server sees it, read by each holder inside its
critical section and by a sampler on a connection of its own throughout the run.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from fkit_locks_test_helpers import HANG_GUARD, locktag, wait_until
from sqlalchemy import text

from fkit_core.events import LockAcquired, LockNotAcquired
from fkit_locks import advisory_lock, advisory_xact_lock, try_advisory_xact_lock

if TYPE_CHECKING:
    from collections.abc import Callable

    from fkit_locks_test_helpers import LockView
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    from fkit_core import AsyncSessionManager
    from fkit_core.events import Event

WORKERS = 32
ROUNDS = 3

GRANTED = text(
    "SELECT pid, mode FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid = CAST(:c AS oid) AND objid = CAST(:o AS oid) AND objsubid = :s"
)


async def granted(connection: AsyncConnection | AsyncSession, key: int) -> list[tuple[int, str]]:
    c, o, s = locktag(key)
    result = await connection.execute(GRANTED, {"c": c, "o": o, "s": s})
    return [(int(pid), str(mode)) for pid, mode in result]


async def backend_pid(connection: AsyncConnection | AsyncSession) -> int:
    return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


class Exclusion:
    """The shared counter: how many workers are inside the critical section right now."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.entries = 0
        self.seen_by_server: list[list[tuple[int, str]]] = []

    async def critical(self, connection: AsyncConnection | AsyncSession, key: int) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        self.entries += 1
        try:
            mine = await backend_pid(connection)
            server = await granted(connection, key)
            if server != [(mine, "ExclusiveLock")]:
                self.seen_by_server.append(server)
            await asyncio.sleep(0)  # give every other worker a chance to barge in
        finally:
            self.inside -= 1


async def sample(locks: LockView, key: int, stop: asyncio.Event, worst: list[int]) -> None:
    while not stop.is_set():
        worst.append(len(await granted(locks.connection, key)))
        await asyncio.sleep(0)


@pytest.mark.asyncio
@pytest.mark.parametrize("scope", ["transaction", "session"])
async def test_at_most_one_of_32_workers_holds_the_exclusive_lock(
    make_manager: Callable[..., AsyncSessionManager],
    locks: LockView,
    key: int,
    scope: str,
) -> None:
    manager = make_manager(size=WORKERS + 2)
    acquired: list[Event] = []
    manager.bus.subscribe(LockAcquired, acquired.append)
    exclusion = Exclusion()

    async def worker() -> None:
        for _ in range(ROUNDS):
            if scope == "transaction":
                async with (
                    manager.get_transaction() as session,
                    advisory_xact_lock(session, key),
                ):
                    await exclusion.critical(session, key)
            else:
                async with advisory_lock(manager, key) as lock:
                    assert lock.connection is not None
                    await exclusion.critical(lock.connection, key)

    stop, counts = asyncio.Event(), []
    sampler = asyncio.create_task(sample(locks, key, stop, counts))
    async with asyncio.timeout(HANG_GUARD):
        await asyncio.gather(*(worker() for _ in range(WORKERS)))
    stop.set()
    await sampler
    assert exclusion.entries == WORKERS * ROUNDS
    assert exclusion.most == 1
    assert exclusion.seen_by_server == []
    assert counts
    assert max(counts) <= 1
    assert len(acquired) == WORKERS * ROUNDS
    assert await locks.advisory(key) == []


@pytest.mark.asyncio
async def test_shared_locks_coexist_and_exclude_an_exclusive_one(
    make_manager: Callable[..., AsyncSessionManager], locks: LockView, key: int
) -> None:
    sharers = 8
    manager = make_manager(size=sharers + 4)
    all_hold = asyncio.Barrier(sharers + 1)
    release = asyncio.Event()
    order: list[str] = []

    async def share() -> None:
        async with manager.get_transaction() as session:
            async with advisory_xact_lock(session, key, shared=True):
                await all_hold.wait()  # only passes if every sharer holds at once
                await release.wait()
            order.append("shared released")

    async def exclusive() -> None:
        async with manager.get_transaction() as session, advisory_xact_lock(session, key):
            order.append("exclusive acquired")

    async with asyncio.timeout(HANG_GUARD):
        tasks = [asyncio.create_task(share()) for _ in range(sharers)]
        await all_hold.wait()
        modes = [mode for _, mode in await granted(locks.connection, key)]
        assert modes == ["ShareLock"] * sharers
        async with manager.get_transaction() as session:
            assert await try_advisory_xact_lock(session, key) is False
            assert await try_advisory_xact_lock(session, key, shared=True) is True
        waiter = asyncio.create_task(exclusive())
        await wait_until(lambda: _waiting(locks, key), "the exclusive request queues")
        assert order == []
        release.set()
        await asyncio.gather(*tasks, waiter)
    assert order == ["shared released"] * sharers + ["exclusive acquired"]
    assert await locks.advisory(key) == []


async def _waiting(locks: LockView, key: int) -> bool:
    return bool(await locks.waiters(key))


@pytest.mark.asyncio
async def test_try_lock_returns_false_under_contention_without_waiting(
    make_manager: Callable[..., AsyncSessionManager], locks: LockView, key: int
) -> None:
    manager = make_manager(size=WORKERS + 2)
    not_acquired: list[Event] = []
    manager.bus.subscribe(LockNotAcquired, not_acquired.append)

    async def try_once() -> bool:
        async with manager.get_transaction() as session:
            return await try_advisory_xact_lock(session, key)

    # The holder keeps the lock until every try has answered: a try that waited for the
    # lock would never answer, and the hang guard would fail the test.
    async with asyncio.timeout(HANG_GUARD):
        async with manager.get_transaction() as holder:
            assert await try_advisory_xact_lock(holder, key)
            answers = await asyncio.gather(*(try_once() for _ in range(WORKERS - 1)))
            assert await locks.waiters(key) == []
    assert answers == [False] * (WORKERS - 1)
    assert len(not_acquired) == WORKERS - 1
    assert {e.scope for e in not_acquired} == {"transaction"}
