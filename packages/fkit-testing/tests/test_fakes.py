"""The in-memory fakes: what each promises beyond the shared contracts."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from fkit_core import EventBus
from fkit_core.errors import LockNotAvailableError, ReadOnlyTransactionError
from fkit_core.events import Event, LockAcquired, LockNotAcquired, LockReleased
from fkit_testing import (
    FakeAdvisoryLocks,
    InMemoryRepository,
    InMemoryUnitOfWork,
    LockRecord,
    RecordingEventBus,
)

HANG_GUARD = 30.0


@dataclass
class User:
    id: int | None
    email: str


@dataclass(frozen=True)
class Tag:
    id: int | None
    name: str


# -- InMemoryRepository ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_seed_clear_count_and_all() -> None:
    users = InMemoryRepository[User, int]()
    seeded = users.seed(User(None, "a@example.com"), User(None, "b@example.com"))
    assert [u.id for u in seeded] == [1, 2]
    assert users.count() == 2
    assert [u.email for u in users.all()] == ["a@example.com", "b@example.com"]
    users.clear()
    assert users.count() == 0
    assert (await users.save(User(None, "c@example.com"))).id == 1  # the counter restarts


@pytest.mark.asyncio
async def test_stored_entities_are_copies_like_rows() -> None:
    users = InMemoryRepository[User, int]()
    user = await users.save(User(None, "a@example.com"))
    user.email = "changed@example.com"  # not saved
    found = await users.find_by_id(1)
    assert found is not None
    assert found.email == "a@example.com"
    found.email = "also not saved"
    assert (await users.list_all())[0].email == "a@example.com"
    shared = InMemoryRepository[User, int](copy=False)
    kept = await shared.save(User(None, "a@example.com"))
    assert await shared.find_by_id(1) is kept


@pytest.mark.asyncio
async def test_keys_frozen_entities_explicit_keys_and_key_factories() -> None:
    tags = InMemoryRepository[Tag, int]()
    saved = await tags.save(Tag(None, "x"))
    assert saved == Tag(1, "x")  # a frozen dataclass comes back as a copy with its key
    tags.seed(Tag(10, "explicit"))
    assert (await tags.save(Tag(None, "next"))).id == 11  # never clashes with seeded keys
    by_uuid = InMemoryRepository[User, uuid.UUID](new_key=uuid.uuid4)
    user = await by_uuid.save(User(None, "a@example.com"))
    assert isinstance(user.id, uuid.UUID)
    by_name = InMemoryRepository[Any, str](key="name")
    await by_name.save(Tag(None, "b"))
    await by_name.save(Tag(None, "a"))
    assert [t.name for t in await by_name.list_all()] == ["a", "b"]


@pytest.mark.asyncio
async def test_read_only_repository_refuses_writes_with_the_real_error() -> None:
    users = InMemoryRepository[User, int]()
    users.read_only = True
    with pytest.raises(ReadOnlyTransactionError) as caught:
        await users.save(User(None, "a@example.com"))
    assert caught.value.sqlstate == "25006"
    with pytest.raises(ReadOnlyTransactionError):
        await users.delete(1)
    users.seed(User(None, "seeding is a test helper"))  # not a write of the code under test
    assert users.count() == 1


# -- InMemoryUnitOfWork ------------------------------------------------------------------


class PlainFake:
    """A hand-written fake without snapshot(): the UoW deep-copies its attributes."""

    def __init__(self) -> None:
        self.sent: list[str] = []


@pytest.mark.asyncio
async def test_uow_counts_commits_and_rollbacks_and_restores_plain_fakes() -> None:
    outbox = PlainFake()
    uow = InMemoryUnitOfWork(users=InMemoryRepository[User, int](), outbox=outbox)
    async with uow.transaction() as tx:
        await tx.users.save(User(None, "a@example.com"))
        tx.outbox.sent.append("welcome a")
    with pytest.raises(LookupError):
        async with uow.transaction() as tx:
            await tx.users.save(User(None, "b@example.com"))
            tx.outbox.sent.append("welcome b")
            raise LookupError
    assert (uow.commits, uow.rollbacks) == (1, 1)
    assert uow.repositories["users"].count() == 1
    assert outbox.sent == ["welcome a"]
    async with uow.query() as qx:
        assert [u.email for u in await qx.users.list_all()] == ["a@example.com"]
    assert uow.rollbacks == 2  # a query keeps nothing


@pytest.mark.asyncio
async def test_uow_query_and_readonly_transactions_refuse_writes() -> None:
    uow = InMemoryUnitOfWork(users=InMemoryRepository[User, int]())
    with pytest.raises(ReadOnlyTransactionError):
        async with uow.transaction(readonly=True) as tx:
            await tx.users.save(User(None, "a@example.com"))
    async with uow.transaction() as tx:  # writable again afterwards
        await tx.users.save(User(None, "b@example.com"))
    assert uow.repositories["users"].count() == 1


@pytest.mark.asyncio
async def test_uow_managed_session_rollback_and_unknown_repository() -> None:
    uow = InMemoryUnitOfWork(users=InMemoryRepository[User, int]())
    async with uow.managed_session() as (tx, session):
        await tx.users.save(User(None, "a@example.com"))
        await session.rollback()
        await tx.users.save(User(None, "b@example.com"))
        await session.commit()
    assert [u.email for u in uow.repositories["users"].all()] == ["b@example.com"]
    async with uow.transaction() as tx:
        with pytest.raises(AttributeError, match=r"no repository 'orders'.*it has: users"):
            _ = tx.orders


# -- FakeAdvisoryLocks --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_locks_conflict_between_owners_and_stack_within_one() -> None:
    locks = FakeAdvisoryLocks()
    assert await locks.try_lock("job") is True
    assert await locks.try_lock("job") is True  # the same session takes it again
    assert await locks.try_lock("job", owner="worker-2") is False
    assert await locks.unlock("job") is True
    assert await locks.try_lock("job", owner="worker-2") is False  # still held once
    assert await locks.unlock("job") is True
    assert await locks.unlock("job") is False  # like pg_advisory_unlock: not held
    assert await locks.try_lock("job", owner="worker-2") is True
    assert locks.holders("job") == ["worker-2"]


@pytest.mark.asyncio
async def test_shared_holders_coexist_and_exclude_an_exclusive_one() -> None:
    locks = FakeAdvisoryLocks()
    assert await locks.try_lock("report", shared=True, owner="a") is True
    assert await locks.try_lock("report", shared=True, owner="b") is True
    assert await locks.try_lock("report", owner="c") is False
    assert locks.release_all("a") == 1
    locks.free("report", owner="b")
    assert await locks.try_lock("report", owner="c") is True
    assert await locks.try_lock("report", shared=True, owner="a") is False


@pytest.mark.asyncio
async def test_lock_waits_for_another_task_to_release() -> None:
    locks = FakeAdvisoryLocks()
    order: list[str] = []
    holding = asyncio.Event()

    async def first() -> None:
        async with locks.lock("payments"):
            holding.set()
            order.append("first in")
            await asyncio.sleep(0.05)
            order.append("first out")

    async def second() -> None:
        await holding.wait()
        async with locks.lock("payments"):
            order.append("second in")

    async with asyncio.timeout(HANG_GUARD):
        await asyncio.gather(first(), second())
    assert order == ["first in", "first out", "second in"]
    assert not locks.is_locked("payments")


@pytest.mark.asyncio
async def test_lock_timeout_raises_what_fkit_locks_raises() -> None:
    locks = FakeAdvisoryLocks()
    locks.hold("nightly")  # another process holds it
    with pytest.raises(LockNotAvailableError) as caught:
        async with locks.lock("nightly", timeout=0.01):
            pass
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.sqlstate == "55P03"
    locks.free("nightly")
    async with locks.lock("nightly", timeout=0):
        assert locks.is_locked("nightly")
    locks.hold("nightly", owner="x")
    with pytest.raises(LockNotAvailableError):
        locks.hold("nightly", owner="y")


@pytest.mark.asyncio
async def test_locks_record_history_and_report_events_on_a_bus() -> None:
    bus = RecordingEventBus()
    locks = FakeAdvisoryLocks(bus=bus, manager_name="svc")
    locks.hold("k", owner="other")
    assert await locks.try_lock("k", owner="me") is False
    locks.free("k", owner="other")
    assert bus.names() == ["LockAcquired", "LockNotAcquired", "LockReleased"]
    acquired, refused, released = bus.events
    assert isinstance(acquired, LockAcquired)
    assert (acquired.manager, acquired.key, acquired.scope) == ("svc", "k", "session")
    assert isinstance(refused, LockNotAcquired)
    assert isinstance(released, LockReleased)
    assert locks.history == [
        LockRecord("acquired", "k", "other", False),
        LockRecord("not_acquired", "k", "me", False),
        LockRecord("released", "k", "other", False),
    ]


# -- RecordingEventBus --------------------------------------------------------------------


def test_recording_bus_records_everything_and_still_delivers() -> None:
    bus = RecordingEventBus()
    assert isinstance(bus, EventBus)
    assert bus.wants(LockReleased)  # nobody subscribed, yet it is built and recorded
    delivered: list[Event] = []
    bus.subscribe(LockAcquired, delivered.append)
    first = LockAcquired("m", "1", 0.0, "transaction", False)
    bus.emit(first)
    bus.emit(LockReleased("m", "1", 0.1, "transaction", False))
    assert delivered == [first]
    assert bus.of_type(LockAcquired) == [first]
    assert bus.names() == ["LockAcquired", "LockReleased"]
    bus.clear()
    assert bus.events == []
