"""Fixtures for fkit-di's tests: a real PostgreSQL through fkit-testing's plugin."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from sqlalchemy import text

from fkit_core import AsyncSessionManager, QuerySettings
from fkit_core.settings import BasePostgresConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    """Each database test runs on every supported driver (FKIT_TEST_DRIVER narrows it)."""
    return fkit_each_driver


@pytest.fixture
def db_url(fkit_each_driver_url: str) -> str:
    return fkit_each_driver_url


@pytest.fixture
def app_name() -> str:
    """A unique application_name, so pg_stat_activity shows this test's connections only."""
    return f"fkit-di-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def config(db_url: str, app_name: str) -> BasePostgresConfig:
    return BasePostgresConfig(url=db_url, query=QuerySettings(application_name=app_name))


@pytest_asyncio.fixture
async def admin(db_url: str) -> AsyncIterator[AsyncSessionManager]:
    """A separate manager that sets up tables and checks what the code under test did."""
    manager = AsyncSessionManager(db_url, plugins=[], autoload=False, name="admin")
    await manager.start()
    yield manager
    await manager.close()


@pytest_asyncio.fixture
async def table(admin: AsyncSessionManager) -> AsyncIterator[str]:
    """A fresh ``(v int primary key)`` table, dropped after the test."""
    name = f"di_{uuid.uuid4().hex[:10]}"
    async with admin.get_transaction() as s:
        await s.execute(text(f"CREATE TABLE {name} (v int PRIMARY KEY)"))
    yield name
    async with admin.get_transaction() as s:
        await s.execute(text(f"DROP TABLE {name}"))


@pytest.fixture
def committed(admin: AsyncSessionManager, table: str) -> Callable[[], Awaitable[list[int]]]:
    """``await committed()``: the committed values of ``table``, sorted."""

    async def read() -> list[int]:
        async with admin.get_session() as s:
            return sorted((await s.execute(text(f"SELECT v FROM {table}"))).scalars())

    return read


@pytest.fixture
def connections(admin: AsyncSessionManager, app_name: str) -> Callable[[], Awaitable[int]]:
    """``await connections()``: how many server connections carry this test's application_name."""

    async def count() -> int:
        async with admin.get_session() as s:
            result = await s.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
                {"n": app_name},
            )
            return int(result.scalar_one())

    return count


@pytest.fixture
def connections_gone(connections: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[bool]]:
    """``await connections_gone()``: whether this test's connections have all left the server.

    A backend leaves ``pg_stat_activity`` a moment after its client disconnects, so this
    polls; the limit only guards against a hang.
    """

    async def gone() -> bool:
        for _ in range(200):
            if await connections() == 0:
                return True
            await asyncio.sleep(0.05)
        return False

    return gone
