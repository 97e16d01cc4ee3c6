"""Retry: the policy, the decorator's rules, and whole-transaction retry under real contention."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from fkit_core_test_models import Account, BankTransaction, BankUnitOfWork
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from fkit_core import (
    AsyncSessionManager,
    BasePostgresConfig,
    ConfigurationError,
    IsolationLevel,
    PoolSettings,
    RetryConfig,
    retry_async_connection,
)
from fkit_core._retry import is_transient
from fkit_core.errors import ConnectionLostError, SerializationFailureError
from fkit_core.events import Event, RetryScheduled

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

FAST = RetryConfig(max_attempts=3, initial_delay=0.01, max_delay=0.05)


def test_delays_grow_exponentially_up_to_the_cap() -> None:
    policy = RetryConfig(
        max_attempts=6, initial_delay=1.0, max_delay=5.0, exponential_base=2.0, jitter=False
    )
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = RetryConfig(initial_delay=1.0, max_delay=30.0, jitter=True)
    for n in range(1, 5):
        base = min(30.0, 2.0 ** (n - 1))
        assert all(base / 2 <= jittered.delay(n) <= base for _ in range(50))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"initial_delay": 5, "max_delay": 1}, "max_delay"),
        ({"exponential_base": 0.5}, "exponential_base"),
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RetryConfig(**kwargs)  # type: ignore[arg-type]


async def _kill(manager: AsyncSessionManager, pid: int) -> None:
    async with manager.get_session() as killer:
        await killer.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})


@pytest.mark.asyncio
async def test_a_lost_connection_is_retried_on_a_fresh_one(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    pids: list[int] = []

    @retry_async_connection(config=FAST)
    async def whoami(session: AsyncSession) -> int:
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        pids.append(pid)
        if len(pids) == 1:
            await _kill(manager, pid)
            await session.execute(text("SELECT 1"))  # fails: the backend is gone
        return pid

    async with manager.get_session() as session:
        result = await whoami(session)
    assert len(pids) == 2
    assert result == pids[1] != pids[0]
    retries = [e for e in events if isinstance(e, RetryScheduled)]
    assert len(retries) == 1
    assert retries[0].attempt == 1
    assert retries[0].reason in {"ConnectionLostError", "AdminShutdownError"}  # driver-dependent
    assert retries[0].operation.endswith("whoami")


@pytest.mark.asyncio
async def test_permanent_errors_are_raised_at_once(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    calls = 0

    @retry_async_connection(config=FAST)
    async def broken(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        await session.execute(text("SELEC 1"))

    async with manager.get_session() as session:
        with pytest.raises(ProgrammingError):
            await broken(session)
    assert calls == 1
    assert not [e for e in events if isinstance(e, RetryScheduled)]


@pytest.mark.asyncio
async def test_no_retry_inside_a_transaction_that_already_did_work(
    manager: AsyncSessionManager,
) -> None:
    calls = 0

    @retry_async_connection(config=FAST)
    async def read(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await _kill(manager, pid)
        await session.execute(text("SELECT 1"))

    with pytest.raises(ConnectionLostError):
        async with manager.get_transaction() as session:
            await session.execute(text("SELECT 'earlier work in this transaction'"))
            await read(session)
    assert calls == 1


@pytest.mark.asyncio
async def test_retries_stop_after_max_attempts(manager: AsyncSessionManager) -> None:
    calls = 0

    @retry_async_connection(config=FAST)
    async def always_cut(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await _kill(manager, pid)
        await session.execute(text("SELECT 1"))

    async with manager.get_session() as session:
        with pytest.raises(DBAPIError) as info:
            await always_cut(session)
    assert calls == 3
    assert is_transient(info.value)  # the last attempt's own error, unchanged


@pytest.mark.asyncio
async def test_concurrent_serializable_transfers_all_commit_and_conserve_money(
    db_url: str, tables: None
) -> None:
    config = BasePostgresConfig(url=db_url, pool=PoolSettings(size=16, max_overflow=0))
    async with AsyncSessionManager(config, plugins=[], autoload=False) as manager:
        retries: list[RetryScheduled] = []
        manager.bus.subscribe(RetryScheduled, retries.append)
        uow = BankUnitOfWork(manager)
        async with uow.transaction() as tx:
            for i in range(4):
                await tx.accounts.add(i, f"acct-{i}", 1000)
        first_attempts = asyncio.Barrier(16)
        attempts: dict[int, int] = {}

        async def transfer(n: int) -> None:
            async def body(tx: BankTransaction) -> None:
                attempts[n] = attempts.get(n, 0) + 1
                src, dst = n % 4, (n + 1) % 4
                a = await tx.accounts.get(src)
                b = await tx.accounts.get(dst)
                assert a is not None
                assert b is not None
                if attempts[n] == 1:
                    await first_attempts.wait()  # every first attempt reads before anyone writes
                a.balance -= 10
                b.balance += 10
                await tx.session.flush()

            await uow.run(
                body,
                isolation_level=IsolationLevel.SERIALIZABLE,
                retry=RetryConfig(max_attempts=50, initial_delay=0.005, max_delay=0.1),
            )

        await asyncio.gather(*(transfer(n) for n in range(16)))
        assert len(attempts) == 16
        async with manager.get_session() as s:
            balances = list(
                (await s.execute(select(Account.balance).order_by(Account.id))).scalars()
            )
        assert sum(balances) == 4000
        assert balances == [1000, 1000, 1000, 1000]  # each account sent 4 x 10 and received 4 x 10
        assert retries, "the forced overlap must have caused serialization failures"
        assert {r.reason for r in retries} <= {"SerializationFailureError", "DeadlockDetectedError"}
        assert sum(attempts.values()) == 16 + len(retries)


@pytest.mark.asyncio
async def test_run_does_not_retry_application_errors_or_when_disabled(
    manager: AsyncSessionManager, tables: None
) -> None:
    uow = BankUnitOfWork(manager)
    calls = 0

    async def body(tx: BankTransaction) -> None:
        nonlocal calls
        calls += 1
        raise KeyError("not a database error")

    with pytest.raises(KeyError):
        await uow.run(body)
    assert calls == 1

    async def conflict(tx: BankTransaction) -> None:
        nonlocal calls
        calls += 1
        raise SerializationFailureError("simulated conflict", sqlstate="40001")

    calls = 0
    with pytest.raises(SerializationFailureError):
        await uow.run(conflict, retry=False)
    assert calls == 1
    calls = 0
    with pytest.raises(SerializationFailureError):
        await uow.run(conflict, retry=RetryConfig(max_attempts=3, initial_delay=0, max_delay=0))
    assert calls == 3


@pytest.mark.asyncio
async def test_run_returns_the_result_of_the_committed_attempt(
    manager: AsyncSessionManager, tables: None
) -> None:
    uow = BankUnitOfWork(manager)

    async def body(tx: BankTransaction) -> int:
        await tx.accounts.add(1, "ada", 5)
        return await tx.accounts.total()

    assert await uow.run(body) == 5
    async with manager.get_session() as s:
        assert (await s.get(Account, 1)) is not None
