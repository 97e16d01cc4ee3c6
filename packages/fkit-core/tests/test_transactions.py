"""get_transaction(): commit, rollback on error or cancel, COMMIT failures, characteristics."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from fkit_core import AsyncSessionManager, ConfigurationError, IsolationLevel
from fkit_core.errors import ReadOnlyTransactionError, UniqueViolationError
from fkit_core.events import Event, TransactionEnded, TransactionStarted

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest_asyncio.fixture
async def table(manager: AsyncSessionManager) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    async with manager.get_transaction() as session:
        await session.execute(text(f"CREATE TABLE {name} (id int PRIMARY KEY, note text)"))
    yield name
    async with manager.get_transaction() as session:
        await session.execute(text(f"DROP TABLE {name}"))


async def _ids(manager: AsyncSessionManager, table: str) -> list[int]:
    async with manager.get_session() as session:
        return list((await session.execute(text(f"SELECT id FROM {table} ORDER BY id"))).scalars())


@pytest.mark.asyncio
async def test_commits_on_success(
    manager: AsyncSessionManager, table: str, events: list[Event]
) -> None:
    async with manager.get_transaction() as session:
        await session.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
    assert await _ids(manager, table) == [1]
    ended = [e for e in events if isinstance(e, TransactionEnded)]
    assert ended[0].outcome == "commit"
    assert ended[0].error is None
    assert ended[0].duration > 0


@pytest.mark.asyncio
async def test_rolls_back_on_exception_and_the_exception_propagates(
    manager: AsyncSessionManager, table: str, events: list[Event]
) -> None:
    with pytest.raises(ValueError, match="boom"):
        async with manager.get_transaction() as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
            raise ValueError("boom")
    assert await _ids(manager, table) == []
    ended = [e for e in events if isinstance(e, TransactionEnded)]
    assert (ended[-1].outcome, ended[-1].error) == ("error", "ValueError")
    assert manager.in_flight == 0
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_rolls_back_when_the_task_is_cancelled(
    manager: AsyncSessionManager, table: str, events: list[Event]
) -> None:
    inserted = asyncio.Event()

    async def work() -> None:
        async with manager.get_transaction() as session:
            await session.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
            inserted.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(work())
    await inserted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _ids(manager, table) == []
    ended = [e for e in events if isinstance(e, TransactionEnded)]
    assert ended[-1].outcome == "cancelled"
    assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_failure_at_commit_is_raised_translated_and_chained(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    name = f"d_{uuid.uuid4().hex[:10]}"
    async with manager.get_transaction() as session:
        await session.execute(
            text(
                f"CREATE TABLE {name} (id int, CONSTRAINT {name}_id_key UNIQUE (id) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    try:
        with pytest.raises(UniqueViolationError) as info:
            async with manager.get_transaction() as session:
                # Both inserts succeed; the deferred constraint fails only at COMMIT.
                await session.execute(text(f"INSERT INTO {name} VALUES (1), (1)"))
        assert info.value.constraint_name == f"{name}_id_key"
        assert info.value.sqlstate == "23505"
        assert isinstance(info.value.__cause__, IntegrityError)
        async with manager.get_session() as session:
            assert (await session.execute(text(f"SELECT count(*) FROM {name}"))).scalar() == 0
        ended = [e for e in events if isinstance(e, TransactionEnded)]
        assert ended[-1].outcome == "error"
    finally:
        async with manager.get_transaction() as session:
            await session.execute(text(f"DROP TABLE {name}"))


@pytest.mark.asyncio
@pytest.mark.parametrize("level", list(IsolationLevel))
@pytest.mark.parametrize("pgbouncer", [False, True], ids=["direct", "pgbouncer-mode"])
async def test_every_isolation_level_is_applied_and_does_not_leak(
    db_url: str, level: IsolationLevel, pgbouncer: bool
) -> None:
    # One pooled connection, so the next transaction surely reuses the same one. In
    # pgbouncer mode the server settings come from a `begin` listener; the level must
    # still be the transaction's first statement, and the settings must hold too.
    from fkit_core import BasePostgresConfig, PoolSettings

    config = BasePostgresConfig(
        url=db_url,
        pool=PoolSettings(size=1, max_overflow=0),
        pgbouncer=pgbouncer,
        query={"statement_timeout": 7},
    )
    async with AsyncSessionManager(config, plugins=[], autoload=False) as manager:
        async with manager.get_transaction(level.value.lower()) as session:
            shown = (await session.execute(text("SHOW transaction_isolation"))).scalar()
            timeout = (await session.execute(text("SHOW statement_timeout"))).scalar()
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
        assert str(shown).upper() == level.value
        assert timeout == "7s"
        async with manager.get_transaction() as session:
            assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar() == pid
            assert (
                await session.execute(text("SHOW transaction_isolation"))
            ).scalar() == "read committed"


@pytest.mark.asyncio
async def test_readonly_transactions_refuse_writes_and_do_not_leak(db_url: str, table: str) -> None:
    from fkit_core import BasePostgresConfig, PoolSettings

    config = BasePostgresConfig(url=db_url, pool=PoolSettings(size=1, max_overflow=0))
    async with AsyncSessionManager(config, plugins=[], autoload=False) as manager:
        with pytest.raises(ReadOnlyTransactionError) as info:
            async with manager.get_transaction(readonly=True) as session:
                assert (await session.execute(text("SHOW transaction_read_only"))).scalar() == "on"
                await session.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
        assert info.value.sqlstate == "25006"
        async with manager.get_transaction() as session:
            assert (await session.execute(text("SHOW transaction_read_only"))).scalar() == "off"
            await session.execute(text(f"INSERT INTO {table} VALUES (2, 'b')"))
        async with manager.get_transaction(
            IsolationLevel.SERIALIZABLE, readonly=True, deferrable=True
        ) as session:
            assert (await session.execute(text("SHOW transaction_deferrable"))).scalar() == "on"


@pytest.mark.asyncio
async def test_events_describe_the_transaction(
    manager: AsyncSessionManager, events: list[Event]
) -> None:
    async with manager.get_transaction("serializable", readonly=True) as session:
        await session.execute(text("SELECT 1"))
    started = [e for e in events if isinstance(e, TransactionStarted)]
    ended = [e for e in events if isinstance(e, TransactionEnded)]
    assert started == [
        TransactionStarted("default", "primary", "transaction", "SERIALIZABLE", True, False)
    ]
    assert (ended[0].kind, ended[0].isolation_level, ended[0].readonly, ended[0].outcome) == (
        "transaction",
        "SERIALIZABLE",
        True,
        "commit",
    )


def test_unknown_isolation_level_fails_before_any_work(manager: AsyncSessionManager) -> None:
    with pytest.raises(ConfigurationError, match="SNAPSHOT"):
        manager.get_transaction("SNAPSHOT")
    assert manager.in_flight == 0


@pytest.mark.asyncio
async def test_a_failing_subscriber_never_breaks_the_transaction(
    manager: AsyncSessionManager, table: str
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    manager.bus.subscribe_all(broken)
    async with manager.get_transaction() as session:
        await session.execute(text(f"INSERT INTO {table} VALUES (7, 'x')"))
    assert await _ids(manager, table) == [7]
    assert manager.bus.subscriber_errors >= 2


@pytest.mark.asyncio
async def test_scope_hooks_are_current_while_the_body_runs(manager: AsyncSessionManager) -> None:
    import contextvars
    from contextlib import contextmanager

    current: contextvars.ContextVar[str | None] = contextvars.ContextVar("current", default=None)
    seen: list[object] = []

    @contextmanager
    def hook(info: object) -> object:
        token = current.set("in-transaction")
        try:
            yield
        finally:
            current.reset(token)

    manager.bus.add_scope_hook(hook)  # type: ignore[arg-type]
    async with manager.get_transaction() as session:
        await session.execute(text("SELECT 1"))
        seen.append(current.get())
    seen.append(current.get())
    assert seen == ["in-transaction", None]
