"""Client-side timeouts keep their meaning through fkit's error translation.

Found by the fault suite (integration-tests/faults, the stalled-network scenario), where a
client-side deadline is the only guard a stalled connection leaves:

- a ``TimeoutError`` raised in a transaction body (the caller's own ``asyncio.timeout()``,
  or asyncpg's ``command_timeout``) was translated, being an ``OSError``, into
  ``ConnectionLostError``: ``except TimeoutError`` missed it and ``uow.run`` retried it as
  transient. It now stays a ``TimeoutError``; at COMMIT it is an unknown outcome.
- psycopg's ``connect_timeout`` expiring (``ConnectionTimeout``, no SQLSTATE) was a bare
  ``DatabaseError``; it is a ``ConnectionLostError``, like every libpq-level failure.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fkit_core import (
    AsyncSessionManager,
    AsyncSQLAlchemyUnitOfWork,
    AsyncSQLAlchemyUowTransaction,
    BasePostgresConfig,
)
from fkit_core import errors as e
from fkit_core._retry import is_transient
from fkit_core.events import RetryScheduled

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port whose kernel completes the TCP handshake, but nothing ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accept()ed: the startup packet gets no reply
        yield listener.getsockname()[1]


@pytest.mark.asyncio
async def test_psycopg_connect_timeout_is_a_transient_connection_loss(black_hole: int) -> None:
    # libpq's minimum connect_timeout is 2 seconds.
    url = f"postgresql+psycopg://postgres@127.0.0.1:{black_hole}/postgres?connect_timeout=2"
    config = BasePostgresConfig(url=url, check_on_start=False)
    async with AsyncSessionManager(config, plugins=[], autoload=False) as manager:
        with pytest.raises(e.ConnectionLostError, match="timeout") as info:
            async with manager.get_transaction() as session:
                await session.execute(text("SELECT 1"))
    assert type(info.value.__cause__.orig).__name__ == "ConnectionTimeout"  # type: ignore[union-attr]
    assert isinstance(info.value, ConnectionError)
    assert is_transient(info.value)


@pytest.mark.asyncio
async def test_a_deadline_inside_a_transaction_stays_a_timeout_and_is_not_retried(
    manager: AsyncSessionManager,
) -> None:
    table = f"ct_{uuid.uuid4().hex[:8]}"
    async with manager.get_transaction() as session:
        await session.execute(text(f"CREATE TABLE {table} (n int)"))
    retries: list[RetryScheduled] = []
    manager.bus.subscribe(RetryScheduled, retries.append)
    calls = 0

    async def slow(tx: AsyncSQLAlchemyUowTransaction) -> None:
        nonlocal calls
        calls += 1
        await tx.session.execute(text(f"INSERT INTO {table} VALUES (1)"))
        async with asyncio.timeout(0.2):
            await tx.session.execute(text("SELECT pg_sleep(10)"))

    try:
        uow = AsyncSQLAlchemyUnitOfWork(manager)
        with pytest.raises(TimeoutError) as info:
            async with uow.transaction() as tx:
                await slow(tx)
        assert not isinstance(info.value, e.FkitError)
        with pytest.raises(TimeoutError):
            await uow.run(slow)
        assert (calls, retries) == (2, [])  # a deadline is not a transient connection error
        async with manager.get_transaction() as session:  # both rolled back
            assert (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 0
    finally:
        async with manager.get_transaction() as session:
            await session.execute(text(f"DROP TABLE {table}"))


@pytest.mark.asyncio
async def test_asyncpg_command_timeout_is_a_timeout_and_at_commit_an_unknown_outcome(
    fkit_database_url: str,
) -> None:
    url = make_url(fkit_database_url).set(
        drivername="postgresql+asyncpg", query={"command_timeout": "0.5"}
    )
    table = f"ct_{uuid.uuid4().hex[:8]}"
    async with AsyncSessionManager(
        url.render_as_string(hide_password=False), plugins=[], autoload=False
    ) as manager:
        with pytest.raises(TimeoutError) as info:
            async with manager.get_transaction() as session:
                await session.execute(text("SELECT pg_sleep(10)"))
        assert not isinstance(info.value, e.FkitError)
        async with manager.get_transaction() as session:
            # A deferred constraint trigger makes COMMIT itself outlast command_timeout.
            await session.execute(text(f"CREATE TABLE {table} (n int)"))
            await session.execute(
                text(
                    f"CREATE FUNCTION {table}_slow() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN PERFORM pg_sleep(10); RETURN NULL; END $$"
                )
            )
            await session.execute(
                text(
                    f"CREATE CONSTRAINT TRIGGER {table}_at_commit AFTER INSERT ON {table} "
                    f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {table}_slow()"
                )
            )
        try:
            with pytest.raises(e.CommitOutcomeUnknownError) as unknown:
                async with manager.get_transaction() as session:
                    await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
            assert isinstance(unknown.value.__cause__, TimeoutError)
            assert not is_transient(unknown.value)
        finally:
            async with manager.get_transaction() as session:
                await session.execute(text(f"DROP TABLE {table}"))
                await session.execute(text(f"DROP FUNCTION {table}_slow()"))
