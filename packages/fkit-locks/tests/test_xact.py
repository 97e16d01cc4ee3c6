"""Transaction-scoped advisory locks on real connections."""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING

import pytest
from fkit_locks_test_helpers import wait_until
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from fkit_core import AsyncSQLAlchemyUnitOfWork, AsyncSQLAlchemyUowTransaction
from fkit_core.errors import ConfigurationError, LockNotAvailableError
from fkit_locks import (
    LockNotAcquiredError,
    PostgresAdvisoryLockMixin,
    TransactionRequiredError,
    advisory_xact_lock,
    lock_key,
    try_advisory_xact_lock,
)

if TYPE_CHECKING:
    from fkit_locks_test_helpers import LockView
    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core import AsyncSessionManager

SHOW = text("SHOW lock_timeout")


async def pid_of(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.mark.asyncio
async def test_try_lock_takes_a_free_key_and_holds_it_until_commit(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, key) is True
        assert await locks.holders(key) == [await pid_of(session)]
        assert [mode for _, mode, _ in await locks.advisory(key)] == ["ExclusiveLock"]
    assert await locks.advisory(key) == []


@pytest.mark.asyncio
async def test_try_lock_returns_false_while_another_transaction_holds_it(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    async with manager.get_transaction() as holder:
        assert await try_advisory_xact_lock(holder, key)
        async with manager.get_transaction() as other:
            assert await try_advisory_xact_lock(other, key) is False
            assert await try_advisory_xact_lock(other, key, shared=True) is False
    # Released with the holder's commit: free again.
    async with manager.get_transaction() as other:
        assert await try_advisory_xact_lock(other, key)


@pytest.mark.asyncio
async def test_the_lock_is_released_by_a_rollback(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with manager.get_transaction() as session:
            assert await try_advisory_xact_lock(session, key)
            raise RuntimeError("boom")
    assert await locks.advisory(key) == []


@pytest.mark.asyncio
async def test_a_transaction_may_take_its_own_lock_again(
    manager: AsyncSessionManager, key: int
) -> None:
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, key)
        assert await try_advisory_xact_lock(session, key)
        async with advisory_xact_lock(session, key, timeout=0):
            pass


@pytest.mark.asyncio
async def test_shared_locks_coexist_and_keep_an_exclusive_one_out(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    async with manager.get_transaction() as a, manager.get_transaction() as b:
        assert await try_advisory_xact_lock(a, key, shared=True)
        assert await try_advisory_xact_lock(b, key, shared=True)
        assert sorted(mode for _, mode, _ in await locks.advisory(key)) == ["ShareLock"] * 2
        async with manager.get_transaction() as c:
            assert await try_advisory_xact_lock(c, key) is False


@pytest.mark.asyncio
async def test_outside_a_transaction_it_refuses_clearly(
    manager: AsyncSessionManager, key: int
) -> None:
    async with manager.get_session() as session:
        with pytest.raises(TransactionRequiredError, match="inside a transaction"):
            await try_advisory_xact_lock(session, key)
        with pytest.raises(TransactionRequiredError, match="advisory_xact_lock"):
            async with advisory_xact_lock(session, key):
                pass
        assert not session.in_transaction()


@pytest.mark.asyncio
async def test_a_pair_of_ints_uses_the_two_key_form(
    manager: AsyncSessionManager, locks: LockView
) -> None:
    # A negative half and the largest int4, the first one random: the other driver's
    # case (and other runs) share the server, and a fixed pair would collide with them.
    pair = (-1 - secrets.randbelow(2**31), 2**31 - 1)
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, pair)
        assert await locks.holders(pair) == [await pid_of(session)]


@pytest.mark.asyncio
async def test_a_str_key_locks_the_number_lock_key_gives(
    manager: AsyncSessionManager, locks: LockView, name_key: str
) -> None:
    async with manager.get_transaction() as session:
        assert await try_advisory_xact_lock(session, name_key, namespace="billing")
        number = lock_key(name_key, namespace="billing")
        assert await locks.holders(number) == [await pid_of(session)]
        assert await locks.advisory(name_key) == []  # the un-namespaced key is another lock


@pytest.mark.asyncio
async def test_advisory_xact_lock_waits_until_the_holder_commits(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    order: list[str] = []

    async def waiter() -> None:
        async with manager.get_transaction() as session, advisory_xact_lock(session, key):
            order.append("waiter acquired")

    async with manager.get_transaction() as holder, advisory_xact_lock(holder, key) as lock:
        assert lock.scope == "transaction"
        task = asyncio.create_task(waiter())
        await wait_until(lambda: _has_waiter(locks, key), "the waiter queues behind the holder")
        order.append("holder commits")
    await task
    assert order == ["holder commits", "waiter acquired"]


async def _has_waiter(locks: LockView, key: object) -> bool:
    return bool(await locks.waiters(key))


@pytest.mark.asyncio
async def test_a_timed_out_wait_raises_and_leaves_the_transaction_usable(
    manager: AsyncSessionManager, key: int
) -> None:
    async with manager.get_transaction() as holder:
        assert await try_advisory_xact_lock(holder, key)
        async with manager.get_transaction(lock_timeout=7) as session:
            before = (await session.execute(SHOW)).scalar_one()
            with pytest.raises(LockNotAcquiredError) as caught:
                async with advisory_xact_lock(session, key, timeout=0.05):
                    pytest.fail("the block must not run")
            error = caught.value
            assert isinstance(error, LockNotAvailableError)
            assert isinstance(error, TimeoutError)
            assert (error.key, error.scope, error.shared, error.timeout) == (
                str(key),
                "transaction",
                False,
                0.05,
            )
            assert error.sqlstate == "55P03"
            # Not aborted, and the transaction's own lock_timeout is back.
            assert (await session.execute(SHOW)).scalar_one() == before == "7s"
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


@pytest.mark.asyncio
async def test_lock_timeout_does_not_leak_after_an_acquired_wait(
    manager: AsyncSessionManager, key: int
) -> None:
    async with manager.get_transaction() as session:
        await session.execute(text("SET LOCAL lock_timeout = '1234ms'"))
        before = (await session.execute(SHOW)).scalar_one()
        async with advisory_xact_lock(session, key, timeout=3) as lock:
            assert (await session.execute(SHOW)).scalar_one() == before == "1234ms"
        assert lock.wait_seconds >= 0
        assert (await session.execute(SHOW)).scalar_one() == before


@pytest.mark.asyncio
async def test_lock_timeout_does_not_leak_into_the_next_transaction(
    make_manager: object, key: int
) -> None:
    manager = make_manager(size=1)  # type: ignore[operator]
    async with manager.get_transaction() as session:
        default = (await session.execute(SHOW)).scalar_one()
        async with advisory_xact_lock(session, key, timeout=2):
            pass
    async with manager.get_transaction() as session:  # the same pooled connection
        assert (await session.execute(SHOW)).scalar_one() == default


@pytest.mark.asyncio
async def test_timeout_zero_is_a_try_that_raises(manager: AsyncSessionManager, key: int) -> None:
    async with manager.get_transaction() as holder:
        assert await try_advisory_xact_lock(holder, key)
        async with manager.get_transaction() as session:
            with pytest.raises(LockNotAcquiredError, match="held elsewhere"):
                async with advisory_xact_lock(session, key, timeout=0):
                    pass
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


@pytest.mark.asyncio
async def test_the_transactions_own_lock_timeout_still_applies_without_a_timeout(
    manager: AsyncSessionManager, key: int
) -> None:
    async with manager.get_transaction() as holder:
        assert await try_advisory_xact_lock(holder, key)
        with pytest.raises(LockNotAvailableError) as caught:
            async with (
                manager.get_transaction(lock_timeout=0.05) as session,
                advisory_xact_lock(session, key),
            ):
                pass
        assert not isinstance(caught.value, LockNotAcquiredError)


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5s", True])
def test_a_bad_timeout_is_refused_before_any_work(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        advisory_xact_lock(None, 1, timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_lock_taken_in_a_rolled_back_savepoint_is_released_then(
    manager: AsyncSessionManager, locks: LockView, key: int
) -> None:
    async with manager.get_transaction() as session:
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                assert await try_advisory_xact_lock(session, key)
                raise RuntimeError
        assert await locks.advisory(key) == []
        async with session.begin_nested():
            assert await try_advisory_xact_lock(session, key)
        assert await locks.holders(key) == [await pid_of(session)]  # kept by the parent


@pytest.mark.asyncio
async def test_sessions_no_manager_made_work_too(db_url: str, key: int) -> None:
    engine = create_async_engine(db_url)
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            assert await try_advisory_xact_lock(session, key)
            async with advisory_xact_lock(session, key, timeout=1):
                pass
    finally:
        await engine.dispose()


class LockingTransaction(AsyncSQLAlchemyUowTransaction, PostgresAdvisoryLockMixin):
    pass


class NamespacedTransaction(AsyncSQLAlchemyUowTransaction, PostgresAdvisoryLockMixin):
    lock_namespace = "billing"


@pytest.mark.asyncio
async def test_the_mixin_gives_uow_transactions_lock_methods(
    manager: AsyncSessionManager, locks: LockView, name_key: str
) -> None:
    uow = AsyncSQLAlchemyUnitOfWork(manager, transaction_factory=LockingTransaction)
    async with uow.transaction() as tx:
        assert await tx.try_advisory_lock(name_key)
        async with uow.transaction() as other:
            assert await other.try_advisory_lock(name_key) is False
            with pytest.raises(LockNotAcquiredError):
                async with other.advisory_lock(name_key, timeout=0.05):
                    pass
            async with other.advisory_lock(name_key, shared=False, namespace="elsewhere"):
                pass
        assert await locks.holders(name_key) == [await pid_of(tx.session)]
    assert await locks.advisory(name_key) == []


@pytest.mark.asyncio
async def test_the_mixins_namespace_applies_to_every_key(
    manager: AsyncSessionManager, locks: LockView, name_key: str
) -> None:
    uow = AsyncSQLAlchemyUnitOfWork(manager, transaction_factory=NamespacedTransaction)
    async with uow.transaction() as tx:
        assert await tx.try_advisory_lock(name_key)
        assert await locks.holders(lock_key(name_key, namespace="billing")) == [
            await pid_of(tx.session)
        ]
        assert await locks.advisory(name_key) == []
