"""Fixtures for fkit-locks' tests: a real PostgreSQL, managers, and a view of ``pg_locks``.

Other test runs may share the server, so every test locks keys of its own (random) and
looks at ``pg_locks`` only for those keys.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from fkit_core import AsyncSessionManager, BasePostgresConfig, PoolSettings
from fkit_locks import LocksPlugin

# The shared helpers module (uniquely named, so no other package's tests clash with it).
sys.path.insert(0, str(Path(__file__).parent))

from fkit_locks_test_helpers import LockView

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from fkit_core.events import Event


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    """Each database test runs on every supported driver (FKIT_TEST_DRIVER narrows it)."""
    return fkit_each_driver


@pytest.fixture
def db_url(fkit_each_driver_url: str) -> str:
    return fkit_each_driver_url


@pytest_asyncio.fixture
async def make_manager(db_url: str) -> AsyncIterator[Callable[..., AsyncSessionManager]]:
    """Build started-on-use managers (locks plugin, autoload off); closed at the end."""
    made: list[AsyncSessionManager] = []

    def factory(*, size: int = 5, name: str = "default", **config: Any) -> AsyncSessionManager:
        settings = BasePostgresConfig(
            url=db_url, pool=PoolSettings(size=size, max_overflow=0, timeout=30), **config
        )
        manager = AsyncSessionManager(settings, plugins=[LocksPlugin()], autoload=False, name=name)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        await manager.close(timeout=5)


@pytest_asyncio.fixture
async def manager(make_manager: Callable[..., AsyncSessionManager]) -> AsyncSessionManager:
    m = make_manager()
    await m.start()
    return m


@pytest.fixture
def events(manager: AsyncSessionManager) -> list[Event]:
    """Every event the manager's bus emits during the test."""
    seen: list[Event] = []
    manager.bus.subscribe_all(seen.append)
    return seen


@pytest.fixture
def key() -> int:
    """A bigint key no other test (or test run on the same server) uses."""
    return secrets.randbits(62) + 1


@pytest.fixture
def name_key() -> str:
    """A str key no other test uses."""
    return f"job:{secrets.token_hex(8)}"


@pytest_asyncio.fixture
async def locks(fkit_database_url: str) -> AsyncIterator[LockView]:
    engine = create_async_engine(make_url(fkit_database_url).set(drivername="postgresql+asyncpg"))
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield LockView(connection)
    await engine.dispose()
