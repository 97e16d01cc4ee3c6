"""Fixtures of the fault and load suite: drivers, an admin manager, per-test tables, a proxy.

Every scenario names its own application (``application_name``), so killing "the app's
backends" on a shared server touches nothing else, and its own tables, so tests can run
side by side under ``pytest -n``.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fkit_core import AsyncSessionManager, BasePostgresConfig
from fkit_core.settings import QuerySettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

# The suite's helper modules (uniquely named, so no other test tree's modules clash).
sys.path.insert(0, str(Path(__file__).parent))

from fkit_faults_proxy import FaultProxy


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    """Every scenario runs on every supported driver (FKIT_TEST_DRIVER narrows it)."""
    return fkit_each_driver


@pytest.fixture
def db_url(fkit_each_driver_url: str) -> str:
    """The test server, straight (no proxy), with this test's driver."""
    return fkit_each_driver_url


@pytest.fixture
def app_name() -> str:
    """A unique ``application_name`` for the manager under test."""
    return f"fkit-faults-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def admin(db_url: str) -> AsyncIterator[AsyncSessionManager]:
    """A second manager, straight to the server, that injects faults and verifies data."""
    config = BasePostgresConfig(
        url=db_url, query=QuerySettings(application_name="fkit-faults-admin")
    )
    manager = AsyncSessionManager(config, plugins=[], autoload=False, name="admin")
    await manager.start()
    yield manager
    await manager.close()


@pytest_asyncio.fixture
async def table(admin: AsyncSessionManager) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Create uniquely named tables from a column list; all are dropped after the test."""
    made: list[str] = []

    async def create(columns: str) -> str:
        name = f"fx_{uuid.uuid4().hex[:12]}"
        async with admin.get_transaction() as session:
            await session.execute(text(f"CREATE TABLE {name} ({columns})"))
        made.append(name)
        return name

    yield create
    async with admin.get_transaction() as session:
        for name in made:
            await session.execute(text(f"DROP TABLE IF EXISTS {name}"))


@pytest_asyncio.fixture
async def proxy(fkit_database_url: str) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of the test server, started and stopped around the test."""
    url = make_url(fkit_database_url)
    async with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as started:
        yield started
