"""The Unit of Work: transaction, query, managed_session, savepoints, characteristics, events."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fkit_core_test_models import Account, BankTransaction, BankUnitOfWork, Note
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from fkit_core import (
    AsyncSessionManager,
    AsyncSQLAlchemyUnitOfWork,
    AsyncSQLAlchemyUowTransaction,
    BasePostgresConfig,
    ConfigurationError,
    IsolationLevel,
    PoolSettings,
)
from fkit_core.errors import (
    CommitOutcomeUnknownError,
    ReadOnlyTransactionError,
    StatementTimeoutError,
    UniqueViolationError,
)
from fkit_core.events import Event, TransactionEnded, TransactionStarted

pytestmark = pytest.mark.usefixtures("tables")


async def _balances(manager: AsyncSessionManager) -> dict[int, int]:
    async with manager.get_session() as s:
        return {a.id: a.balance for a in (await s.execute(select(Account))).scalars()}


def _ended(events: list[Event]) -> list[TransactionEnded]:
    return [e for e in events if isinstance(e, TransactionEnded)]


@pytest.mark.asyncio
async def test_transaction_commits_and_repositories_are_lazy(manager: AsyncSessionManager) -> None:
    uow = BankUnitOfWork(manager.session_maker)
    async with uow.transaction() as tx:
        assert isinstance(tx, BankTransaction)
        assert tx.accounts is tx.accounts
        await tx.accounts.add(1, "ada", 100)
        await tx.accounts.add(2, "bob", 50)
    assert await _balances(manager) == {1: 100, 2: 50}


@pytest.mark.asyncio
async def test_transaction_rolls_back_on_exception(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    uow = BankUnitOfWork(manager)
    with pytest.raises(RuntimeError, match="business rule"):
        async with uow.transaction() as tx:
            await tx.accounts.add(1, "ada", 100)
            raise RuntimeError("business rule")
    assert await _balances(manager) == {}
    assert _ended(events)[-1].outcome == "error"


@pytest.mark.asyncio
async def test_transaction_rolls_back_on_cancellation(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    uow = BankUnitOfWork(manager)
    added = asyncio.Event()

    async def job() -> None:
        async with uow.transaction() as tx:
            await tx.accounts.add(1, "ada", 100)
            added.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(job())
    await added.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _balances(manager) == {}
    assert _ended(events)[-1].outcome == "cancelled"
    assert manager.in_flight == 0


@pytest.mark.asyncio
async def test_a_failure_at_commit_reaches_the_caller(manager: AsyncSessionManager) -> None:
    table = f"deferred_{uuid.uuid4().hex[:8]}"
    async with manager.get_transaction() as s:
        await s.execute(
            text(
                f"CREATE TABLE {table} (v int, CONSTRAINT {table}_v UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    try:
        with pytest.raises(UniqueViolationError) as info:
            async with uow.transaction() as tx:
                await tx.session.execute(text(f"INSERT INTO {table} VALUES (1), (1)"))
        assert info.value.constraint_name == f"{table}_v"
    finally:
        async with manager.get_transaction() as s:
            await s.execute(text(f"DROP TABLE {table}"))


@pytest.mark.asyncio
async def test_a_lost_connection_during_commit_is_an_unknown_outcome(
    manager: AsyncSessionManager,
) -> None:
    uow = BankUnitOfWork(manager)
    with pytest.raises(CommitOutcomeUnknownError, match="may or may not"):
        async with uow.transaction() as tx:
            await tx.accounts.add(1, "ada", 100)
            pid = (await tx.session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with manager.get_session() as killer:
                await killer.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
    # It could not have committed here (the server was gone first), and the pool recovered.
    assert await _balances(manager) == {}


@pytest.mark.asyncio
async def test_query_is_read_only_and_commits_nothing(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    uow = BankUnitOfWork(manager)
    async with uow.transaction() as tx:
        await tx.accounts.add(1, "ada", 100)
    async with uow.query() as qx:
        assert (await qx.accounts.get(1)) is not None
        assert (await qx.session.execute(text("SHOW transaction_read_only"))).scalar() == "on"
    assert _ended(events)[-1].kind == "query"
    assert _ended(events)[-1].outcome == "rollback"
    with pytest.raises(ReadOnlyTransactionError):
        async with uow.query(isolation_level=IsolationLevel.REPEATABLE_READ) as qx:
            await qx.accounts.add(2, "bob", 1)
    assert await _balances(manager) == {1: 100}


@pytest.mark.asyncio
async def test_managed_session_commits_only_when_told(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    uow = BankUnitOfWork(manager)
    async with uow.managed_session() as (tx, session):
        assert tx.session is session
        await tx.accounts.add(1, "ada", 100)
        await session.commit()
        await tx.accounts.add(2, "bob", 50)  # never committed
    assert _ended(events)[-1].outcome == "commit"
    async with uow.managed_session() as (tx, session):
        await tx.accounts.add(3, "cy", 10)
        await session.rollback()
    assert _ended(events)[-1].outcome == "rollback"
    async with uow.managed_session() as (tx, _session):
        await tx.accounts.add(4, "dee", 10)  # left without commit or rollback
    assert _ended(events)[-1].outcome == "rollback"
    assert await _balances(manager) == {1: 100}


@pytest.mark.asyncio
async def test_a_failed_savepoint_rolls_back_alone(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    uow = BankUnitOfWork(manager)
    async with uow.transaction() as tx:
        await tx.accounts.add(1, "ada", 100)
        with pytest.raises(UniqueViolationError):
            async with tx.savepoint():
                tx.session.add(Note(body="dup"))
                tx.session.add(Note(body="dup"))
        async with tx.savepoint():
            tx.session.add(Note(body="kept"))
        with pytest.raises(ValueError, match="inner"):
            async with tx.session.begin_nested():
                await tx.accounts.add(2, "bob", 5)
                raise ValueError("inner")
    assert await _balances(manager) == {1: 100}
    async with manager.get_session() as s:
        assert list((await s.execute(select(Note.body))).scalars()) == ["kept"]
    savepoints = [e for e in _ended(events) if e.kind == "savepoint"]
    assert [(e.nested, e.outcome) for e in savepoints] == [(True, "error"), (True, "commit")]


@pytest.mark.asyncio
async def test_characteristics_apply_per_transaction_and_never_leak(db_url: str) -> None:
    config = BasePostgresConfig(url=db_url, pool=PoolSettings(size=1, max_overflow=0))
    async with AsyncSessionManager(config, plugins=[], autoload=False) as manager:
        uow = AsyncSQLAlchemyUnitOfWork(manager)
        async with uow.transaction(
            "serializable", readonly=True, deferrable=True, statement_timeout=1.5, lock_timeout=0.25
        ) as tx:
            shown = {
                name: (await tx.session.execute(text(f"SHOW {name}"))).scalar()
                for name in (
                    "transaction_isolation",
                    "transaction_read_only",
                    "transaction_deferrable",
                    "statement_timeout",
                    "lock_timeout",
                )
            }
            pid = (await tx.session.execute(text("SELECT pg_backend_pid()"))).scalar()
        assert shown == {
            "transaction_isolation": "serializable",
            "transaction_read_only": "on",
            "transaction_deferrable": "on",
            "statement_timeout": "1500ms",
            "lock_timeout": "250ms",
        }
        async with uow.transaction() as tx:
            assert (await tx.session.execute(text("SELECT pg_backend_pid()"))).scalar() == pid
            after = [
                (await tx.session.execute(text(f"SHOW {name}"))).scalar()
                for name in (
                    "transaction_isolation",
                    "transaction_read_only",
                    "statement_timeout",
                    "lock_timeout",
                )
            ]
        assert after == ["read committed", "off", "0", "0"]


@pytest.mark.asyncio
async def test_a_statement_timeout_per_transaction_fires(manager: AsyncSessionManager) -> None:
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    with pytest.raises(StatementTimeoutError):
        async with uow.transaction(statement_timeout=0.1) as tx:
            await tx.session.execute(text("SELECT pg_sleep(5)"))


@pytest.mark.asyncio
@pytest.mark.parametrize("level", list(IsolationLevel))
async def test_every_isolation_level_in_a_uow(
    manager: AsyncSessionManager, level: IsolationLevel
) -> None:
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    async with uow.transaction(level.value.replace(" ", "_").lower()) as tx:
        shown = (await tx.session.execute(text("SHOW transaction_isolation"))).scalar()
    async with uow.query(level) as qx:
        shown_in_query = (await qx.session.execute(text("SHOW transaction_isolation"))).scalar()
    assert str(shown).upper() == str(shown_in_query).upper() == level.value


def test_bad_arguments_fail_before_any_work(manager: AsyncSessionManager) -> None:
    uow = AsyncSQLAlchemyUnitOfWork(manager)
    with pytest.raises(ConfigurationError, match="READ COMMITTED"):
        uow.transaction("chaos")
    with pytest.raises(ConfigurationError, match="statement_timeout"):
        uow.transaction(statement_timeout=-1)
    assert manager.in_flight == 0


@pytest.mark.asyncio
async def test_a_uow_from_the_sessionmaker_reports_like_one_from_the_manager(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    for source in (manager, manager.session_maker):
        uow = BankUnitOfWork(source)
        async with uow.transaction("repeatable read") as tx:
            await tx.accounts.total()
    started = [e for e in events if isinstance(e, TransactionStarted)]
    assert started[0] == started[1]
    assert started[0] == TransactionStarted(
        "default", "primary", "transaction", "REPEATABLE READ", False, False
    )
    assert [(e.kind, e.outcome) for e in _ended(events)] == [("transaction", "commit")] * 2


@pytest.mark.asyncio
async def test_a_uow_over_a_plain_sessionmaker_works_without_a_manager(
    db_url: str, tables: None
) -> None:
    engine = create_async_engine(db_url)
    try:
        uow = AsyncSQLAlchemyUnitOfWork(async_sessionmaker(engine, expire_on_commit=False))
        async with uow.transaction("read uncommitted") as tx:
            assert isinstance(tx, AsyncSQLAlchemyUowTransaction)
            level = (await tx.session.execute(text("SHOW transaction_isolation"))).scalar()
            tx.session.add(Account(id=9, owner="zed", balance=1))
        assert level == "read uncommitted"
        async with AsyncSession(engine) as s:
            assert (await s.get(Account, 9)) is not None
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_close_drains_uow_transactions(db_url: str, tables: None) -> None:
    manager = AsyncSessionManager(db_url, plugins=[], autoload=False)
    await manager.start()
    uow = BankUnitOfWork(manager)
    inside = asyncio.Event()
    proceed = asyncio.Event()

    async def work() -> None:
        async with uow.transaction() as tx:
            await tx.accounts.add(5, "eve", 5)
            inside.set()
            await proceed.wait()

    task = asyncio.create_task(work())
    await inside.wait()
    closing = asyncio.create_task(manager.close(timeout=30))
    await asyncio.sleep(0)
    proceed.set()
    await closing
    await task
    async with AsyncSessionManager(db_url, plugins=[], autoload=False) as other:
        assert (await _balances(other)) == {5: 5}
