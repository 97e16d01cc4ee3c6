"""Session-scoped advisory locks: a dedicated connection, released on it, never leaked."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING

import pytest
from fkit_locks_test_helpers import wait_until
from sqlalchemy import text

from fkit_core import AsyncSessionManager, BasePostgresConfig
from fkit_core.errors import ConfigurationError, ManagerClosedError
from fkit_core.events import LockAcquired, LockReleased
from fkit_locks import (
    LockKeyError,
    LockNotAcquiredError,
    SessionLockUnsupportedError,
    advisory_lock,
    lock_key,
    try_advisory_xact_lock,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from fkit_locks_test_helpers import LockView
    from sqlalchemy.ext.asyncio import AsyncConnection

    from fkit_core.events import Event


async def pid_on(connection: AsyncConnection) -> int:
    return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.mark.asyncio
async def test_the_lock_is_held_on_its_own_connection_for_the_block(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    async with advisory_lock(manager, key) as lock:
        assert lock.connection is not None
        assert lock.scope == "session"
        pid = await pid_on(lock.connection)
        assert await locks.holders(key) == [pid]
        # Not a transaction lock: it survives transactions on that connection.
        await lock.connection.execute(text("SELECT 1"))
        assert await locks.holders(key) == [pid]
        # Nobody else can have it meanwhile.
        async with manager.get_transaction() as session:
            assert await try_advisory_xact_lock(session, key) is False
    assert await locks.advisory(key) == []


@pytest.mark.asyncio
async def test_a_clean_release_returns_the_connection_to_the_pool(
    make_manager: Callable[..., AsyncSessionManager], locks: LockView, key: int
) -> None:
    manager = make_manager(size=1)
    async with advisory_lock(manager, key) as lock:
        assert lock.connection is not None
        pid = await pid_on(lock.connection)
    async with manager.engine.connect() as connection:  # the only pooled connection
        assert await pid_on(connection) == pid
        assert await locks.advisory(key) == []


@pytest.mark.asyncio
async def test_after_a_raising_block_the_lock_is_gone_and_the_error_propagates(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom, match="inside"):
        async with advisory_lock(manager, key):
            raise Boom("inside")
    assert await locks.advisory(key) == []
    assert manager.in_flight == 0


@pytest.mark.asyncio
async def test_after_a_cancelled_block_the_lock_is_gone(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    holding = asyncio.Event()

    async def hold() -> None:
        async with advisory_lock(manager, key):
            holding.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold())
    await holding.wait()
    assert len(await locks.holders(key)) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await locks.advisory(key) == []
    assert manager.in_flight == 0


@pytest.mark.asyncio
async def test_a_wait_cancelled_half_way_discards_its_connection(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    async with advisory_lock(manager, key):
        waiter = asyncio.create_task(_take(manager, key))
        await wait_until(lambda: _has_waiter(locks, key), "the waiter queues")
        (waiter_pid,) = await locks.waiters(key)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # Whether the server granted it at the last moment cannot be known: the waiting
        # connection is closed, never pooled.
        await wait_until(lambda: _gone(locks, waiter_pid), "the waiter's backend exits")
    assert await locks.advisory(key) == []
    assert manager.in_flight == 0


async def _take(manager: AsyncSessionManager, key: int) -> None:
    async with advisory_lock(manager, key):
        pass


async def _has_waiter(locks: LockView, key: object) -> bool:
    return bool(await locks.waiters(key))


async def _gone(locks: LockView, pid: int) -> bool:
    return not await locks.alive(pid)


@pytest.mark.asyncio
async def test_closing_the_manager_cancels_the_holder_and_releases_the_lock(
    make_manager: Callable[..., AsyncSessionManager], locks: LockView, key: int
) -> None:
    manager = make_manager()
    holding = asyncio.Event()

    async def hold() -> None:
        async with advisory_lock(manager, key):
            holding.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold())
    await holding.wait()
    await manager.close(timeout=0.1)
    assert task.cancelled()
    assert await locks.advisory(key) == []
    with pytest.raises(ManagerClosedError):
        async with advisory_lock(manager, key):
            pass


@pytest.mark.asyncio
async def test_close_waits_for_a_lock_block_that_finishes_in_time(
    make_manager: Callable[..., AsyncSessionManager], locks: LockView, key: int
) -> None:
    manager = make_manager()
    holding, finish = asyncio.Event(), asyncio.Event()
    done: list[bool] = []

    async def hold() -> None:
        async with advisory_lock(manager, key):
            holding.set()
            await finish.wait()
            done.append(True)

    task = asyncio.create_task(hold())
    await holding.wait()
    closing = asyncio.create_task(manager.close(timeout=60))
    await asyncio.sleep(0)
    assert manager.state == "closing"
    finish.set()
    await closing
    await task
    assert done == [True]
    assert await locks.advisory(key) == []


@pytest.mark.asyncio
async def test_a_timed_out_wait_raises_and_leaves_no_setting_behind(
    make_manager: Callable[..., AsyncSessionManager], locks: LockView, key: int
) -> None:
    holder_manager = make_manager(name="holder")
    manager = make_manager(size=1)
    async with manager.engine.connect() as connection:
        default = (await connection.execute(text("SHOW lock_timeout"))).scalar_one()
        pid = await pid_on(connection)
    async with advisory_lock(holder_manager, key):
        with pytest.raises(LockNotAcquiredError) as caught:
            async with advisory_lock(manager, key, timeout=0.05):
                pytest.fail("the block must not run")
        assert (caught.value.scope, caught.value.timeout) == ("session", 0.05)
        with pytest.raises(LockNotAcquiredError, match="held elsewhere"):
            async with advisory_lock(manager, key, timeout=0):
                pass
    async with manager.engine.connect() as connection:
        assert await pid_on(connection) == pid  # returned to the pool: nothing was held
        assert (await connection.execute(text("SHOW lock_timeout"))).scalar_one() == default
    async with advisory_lock(manager, key, timeout=5) as lock:
        assert lock.connection is not None
        assert (await lock.connection.execute(text("SHOW lock_timeout"))).scalar_one() == default
    assert await locks.advisory(key) == []


@pytest.mark.asyncio
async def test_shared_session_locks_coexist(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    async with advisory_lock(manager, key, shared=True), advisory_lock(manager, key, shared=True):
        assert [mode for _, mode, _ in await locks.advisory(key)] == ["ShareLock"] * 2
        with pytest.raises(LockNotAcquiredError):
            async with advisory_lock(manager, key, timeout=0):
                pass
    assert await locks.advisory(key) == []


@pytest.mark.asyncio
async def test_other_locks_taken_on_the_lock_connection_are_released_too(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    extra = key + 1
    async with advisory_lock(manager, key) as lock:
        assert lock.connection is not None
        await lock.connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": extra})
        await lock.connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
    assert await locks.advisory(key) == []
    assert await locks.advisory(extra) == []


@pytest.mark.asyncio
async def test_an_unlock_that_finds_nothing_discards_the_connection(
    make_manager: Callable[..., AsyncSessionManager],
    locks: LockView,
    key: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = make_manager(size=1)
    caplog.set_level(logging.WARNING, logger="fkit_locks")
    async with advisory_lock(manager, key) as lock:
        assert lock.connection is not None
        pid = await pid_on(lock.connection)
        await lock.connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    assert "was not held by its connection at release" in caplog.text
    await wait_until(lambda: _gone(locks, pid), "the discarded backend exits")
    async with manager.engine.connect() as connection:
        assert await pid_on(connection) != pid


@pytest.mark.asyncio
async def test_a_failing_release_discards_the_connection_and_the_lock_goes_with_it(
    manager: AsyncSessionManager, locks: LockView, key: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fkit_locks")
    async with advisory_lock(manager, key) as lock:
        assert lock.connection is not None
        pid = await pid_on(lock.connection)
        await locks.connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        await wait_until(lambda: _gone(locks, pid), "the backend is terminated")
    assert "releasing advisory lock" in caplog.text
    assert await locks.advisory(key) == []
    assert manager.in_flight == 0


@pytest.mark.asyncio
async def test_session_locks_are_refused_behind_pgbouncer(db_url: str, key: int) -> None:
    manager = AsyncSessionManager(
        BasePostgresConfig(url=db_url, pgbouncer=True), plugins=[], autoload=False
    )
    try:
        with pytest.raises(SessionLockUnsupportedError, match="advisory_xact_lock"):
            advisory_lock(manager, key)
        async with manager.get_transaction() as session:  # the xact form works there
            assert await try_advisory_xact_lock(session, key)
    finally:
        await manager.close()


@pytest.mark.asyncio
async def test_session_locks_report_on_the_bus(
    manager: AsyncSessionManager, events: list[Event], key: int
) -> None:
    async with advisory_lock(manager, key, shared=True):
        pass
    acquired = [e for e in events if isinstance(e, LockAcquired)]
    released = [e for e in events if isinstance(e, LockReleased)]
    assert [(e.key, e.scope, e.shared) for e in acquired] == [(str(key), "session", True)]
    assert [(e.key, e.scope, e.shared) for e in released] == [(str(key), "session", True)]
    assert released[0].held_seconds >= 0


@pytest.mark.asyncio
async def test_str_and_pair_keys_with_namespaces_lock_what_lock_key_says(
    manager: AsyncSessionManager, locks: LockView, name_key: str
) -> None:
    async with advisory_lock(manager, name_key, namespace="reports") as lock:
        assert lock.connection is not None
        number = lock_key(name_key, namespace="reports")
        assert lock.key == str(number)
        assert await locks.holders(number) == [await pid_on(lock.connection)]
    pair = (3, secrets.randbelow(2**31))  # random: other runs may share the server
    async with advisory_lock(manager, pair) as lock:
        assert lock.connection is not None
        assert await locks.holders(pair) == [await pid_on(lock.connection)]
    assert await locks.advisory(number) == []
    assert await locks.advisory(pair) == []


@pytest.mark.parametrize(
    ("arguments", "error"),
    [({"key": 2**64}, LockKeyError), ({"key": 1, "timeout": -1}, ConfigurationError)],
)
def test_bad_arguments_are_refused_before_any_connection(
    arguments: dict[str, object], error: type[Exception]
) -> None:
    manager = AsyncSessionManager("postgresql+asyncpg://nobody@127.0.0.1:1/none", autoload=False)
    with pytest.raises(error):
        advisory_lock(manager, **arguments)  # type: ignore[arg-type]
    assert manager.state == "new"
