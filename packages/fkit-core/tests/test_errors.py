"""Driver errors are translated by SQLSTATE on both drivers, with the original chained."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fkit_core import AsyncSessionManager, BasePostgresConfig, PoolSettings, PoolTimeoutError
from fkit_core import errors as e
from fkit_core.events import DatabaseErrorOccurred, Event

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest_asyncio.fixture
async def tables(manager: AsyncSessionManager) -> AsyncIterator[str]:
    p = f"e_{uuid.uuid4().hex[:8]}"
    async with manager.get_transaction() as s:
        await s.execute(text(f"CREATE TABLE {p}_parent (id int PRIMARY KEY)"))
        await s.execute(
            text(
                f"CREATE TABLE {p}_child (id int PRIMARY KEY, "
                f"parent int REFERENCES {p}_parent(id), "
                f"qty int NOT NULL CONSTRAINT {p}_qty_positive CHECK (qty > 0))"
            )
        )
        await s.execute(text(f"INSERT INTO {p}_parent VALUES (1)"))
    yield p
    async with manager.get_transaction() as s:
        await s.execute(text(f"DROP TABLE {p}_child, {p}_parent"))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("values", "error", "sqlstate", "constraint"),
    [
        ("(1, 1, 5), (1, 1, 5)", e.UniqueViolationError, "23505", "{p}_child_pkey"),
        ("(1, 42, 5)", e.ForeignKeyViolationError, "23503", "{p}_child_parent_fkey"),
        ("(1, 1, NULL)", e.NotNullViolationError, "23502", None),
        ("(1, 1, -1)", e.CheckViolationError, "23514", "{p}_qty_positive"),
    ],
)
async def test_integrity_violations_carry_the_constraint_name(
    manager: AsyncSessionManager,
    tables: str,
    events: list[Event],
    values: str,
    error: type[e.IntegrityViolationError],
    sqlstate: str,
    constraint: str | None,
) -> None:
    with pytest.raises(error) as info:
        async with manager.get_transaction() as s:
            await s.execute(text(f"INSERT INTO {tables}_child VALUES {values}"))
    assert info.value.sqlstate == sqlstate
    assert info.value.sqlstate_class == "23"
    if constraint is not None:
        assert info.value.constraint_name == constraint.format(p=tables)
        assert constraint.format(p=tables) in str(info.value)
    assert isinstance(info.value.__cause__, DBAPIError)
    assert isinstance(info.value, e.FkitError)
    occurred = [x for x in events if isinstance(x, DatabaseErrorOccurred)]
    assert occurred[-1] == DatabaseErrorOccurred(
        "default", "primary", error.__name__, sqlstate, "23"
    )


@pytest.mark.asyncio
async def test_serialization_failure(manager: AsyncSessionManager, tables: str) -> None:
    ready = asyncio.Barrier(2)

    async def bump(n: int) -> None:
        async with manager.get_transaction("SERIALIZABLE") as s:
            await s.execute(text(f"SELECT count(*) FROM {tables}_parent"))
            await ready.wait()
            await s.execute(text(f"INSERT INTO {tables}_parent VALUES ({100 + n})"))
            await s.execute(text(f"SELECT count(*) FROM {tables}_parent"))

    results = await asyncio.gather(bump(1), bump(2), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], e.SerializationFailureError)
    assert failures[0].sqlstate == "40001"


@pytest.mark.asyncio
async def test_deadlock(manager: AsyncSessionManager, tables: str) -> None:
    async with manager.get_transaction() as s:
        await s.execute(text(f"INSERT INTO {tables}_parent VALUES (2)"))
    both_locked = asyncio.Barrier(2)

    async def cross(first: int, second: int) -> None:
        async with manager.get_transaction() as s:
            await s.execute(text(f"UPDATE {tables}_parent SET id = id WHERE id = {first}"))
            await both_locked.wait()
            await s.execute(text(f"UPDATE {tables}_parent SET id = id WHERE id = {second}"))

    results = await asyncio.gather(cross(1, 2), cross(2, 1), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], e.DeadlockDetectedError)
    assert failures[0].sqlstate == "40P01"


@pytest.mark.asyncio
async def test_lock_not_available(manager: AsyncSessionManager, tables: str) -> None:
    locked = asyncio.Event()
    done = asyncio.Event()

    async def holder() -> None:
        async with manager.get_transaction() as s:
            await s.execute(text(f"SELECT * FROM {tables}_parent WHERE id = 1 FOR UPDATE"))
            locked.set()
            await done.wait()

    task = asyncio.create_task(holder())
    await locked.wait()
    try:
        with pytest.raises(e.LockNotAvailableError) as info:
            async with manager.get_transaction() as s:
                await s.execute(
                    text(f"SELECT * FROM {tables}_parent WHERE id = 1 FOR UPDATE NOWAIT")
                )
        assert info.value.sqlstate == "55P03"
    finally:
        done.set()
        await task


@pytest.mark.asyncio
async def test_statement_timeout(manager: AsyncSessionManager) -> None:
    with pytest.raises(e.StatementTimeoutError) as info:
        async with manager.get_transaction() as s:
            await s.execute(text("SET LOCAL statement_timeout = '100ms'"))
            await s.execute(text("SELECT pg_sleep(5)"))
    assert info.value.sqlstate == "57014"
    assert isinstance(info.value, TimeoutError)


@pytest.mark.asyncio
async def test_a_cancelled_statement_that_was_no_timeout(manager: AsyncSessionManager) -> None:
    # Cancelled only once the backend runs the sleep itself (found by a marker in its
    # text): cancelling the moment it looks active could hit the previous statement.
    marker = f"fkit_cancel_{uuid.uuid4().hex[:10]}"
    async with manager.get_session() as probe:

        async def cancel_other(pid: int) -> None:
            for _ in range(200):
                busy = (
                    await probe.execute(
                        text(
                            "SELECT state = 'active' AND position(:m in query) > 0 "
                            "FROM pg_stat_activity WHERE pid = :p"
                        ),
                        {"p": pid, "m": marker},
                    )
                ).scalar()
                if busy:
                    await probe.execute(text("SELECT pg_cancel_backend(:p)"), {"p": pid})
                    return
                await asyncio.sleep(0.02)

        with pytest.raises(e.QueryCanceledError) as info:
            async with manager.get_transaction() as s:
                pid = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                canceller = asyncio.create_task(cancel_other(pid))
                await s.execute(text(f"SELECT pg_sleep(10) /* {marker} */"))
        await canceller
    assert not isinstance(info.value, e.StatementTimeoutError)


@pytest.mark.asyncio
async def test_admin_shutdown_is_a_connection_loss(manager: AsyncSessionManager) -> None:
    async with manager.get_session() as killer:
        with pytest.raises(e.ConnectionLostError) as info:
            async with manager.get_transaction() as s:
                pid = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                await killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                await s.execute(text("SELECT 1"))
    assert isinstance(info.value, ConnectionError)
    assert "could not connect" not in str(info.value)  # it was connected
    # The pool threw the dead connection away; the next transaction works.
    async with manager.get_transaction() as s:
        assert (await s.execute(text("SELECT 1"))).scalar() == 1


@pytest.mark.asyncio
async def test_a_refused_connect_says_it_could_not_connect(db_url: str) -> None:
    from sqlalchemy.engine import make_url

    # Port 1 on the loopback: nothing listens there, the connect is refused at once.
    nowhere = make_url(db_url).set(host="127.0.0.1", port=1, password="s3cret-pw")  # noqa: S106 - a canary
    manager = AsyncSessionManager(
        nowhere.render_as_string(hide_password=False), plugins=[], autoload=False
    )
    with pytest.raises(e.ConnectionLostError) as info:
        await manager.start()
    assert str(info.value).startswith("could not connect to PostgreSQL: ")
    assert "s3cret-pw" not in str(info.value)


@pytest.mark.asyncio
async def test_too_many_connections(manager: AsyncSessionManager, db_url: str) -> None:
    role = f"limited_{uuid.uuid4().hex[:8]}"
    async with manager.get_transaction() as s:
        await s.execute(text(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1"))
    from sqlalchemy.engine import make_url

    limited = make_url(db_url).set(username=role).render_as_string(hide_password=False)
    try:
        async with (
            AsyncSessionManager(limited, plugins=[], autoload=False) as m,
            m.get_session() as first,
        ):
            await first.execute(text("SELECT 1"))
            with pytest.raises(e.TooManyConnectionsError) as info:
                async with m.get_transaction() as second:
                    await second.execute(text("SELECT 1"))
        assert info.value.sqlstate == "53300"
    finally:
        async with manager.get_transaction() as s:
            await s.execute(text(f"DROP ROLE {role}"))


@pytest.mark.asyncio
async def test_pool_timeout(db_url: str) -> None:
    config = BasePostgresConfig(url=db_url, pool=PoolSettings(size=1, max_overflow=0, timeout=0.2))
    async with (
        AsyncSessionManager(config, plugins=[], autoload=False) as m,
        m.get_session() as held,
    ):
        await held.execute(text("SELECT 1"))
        with pytest.raises(PoolTimeoutError, match="pool") as info:
            async with m.get_transaction() as s:
                await s.execute(text("SELECT 1"))
        assert isinstance(info.value, TimeoutError)


def test_translate_leaves_other_errors_alone() -> None:
    from fkit_core import translate_error

    assert translate_error(ValueError("x")) is None
    assert translate_error(KeyError("x")) is None
