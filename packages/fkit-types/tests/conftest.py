"""Fixtures for fkit-types' tests: a real PostgreSQL, a fresh schema per test, both drivers.

Every test gets its own schema (and a manager whose ``search_path`` is that schema), so
the modules' fixed table names never collide, even under ``pytest -n 2``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from fkit_core import AsyncSessionManager, BasePostgresConfig, QuerySettings
from fkit_core.events import EngineCreated
from fkit_types import TypesPlugin

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from sqlalchemy import MetaData

    from fkit_core import Plugin


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    """Each database test runs on every supported driver (FKIT_TEST_DRIVER narrows it)."""
    return fkit_each_driver


@pytest.fixture
def db_url(fkit_each_driver_url: str) -> str:
    return fkit_each_driver_url


@pytest_asyncio.fixture
async def schema(db_url: str) -> AsyncIterator[str]:
    """A fresh schema, created before any manager connects (so it is current_schema())."""
    name = f"fkt_{uuid.uuid4().hex[:16]}"
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{name}"'))
        yield name
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        await engine.dispose()


def make_manager(
    db_url: str, schema: str, plugins: Sequence[Plugin] | None = None, **options: Any
) -> AsyncSessionManager:
    """A manager on ``db_url`` whose sessions work in ``schema``; types plugin by default."""
    config = BasePostgresConfig(url=db_url, query=QuerySettings(search_path=[schema]), **options)
    chosen = [TypesPlugin()] if plugins is None else list(plugins)
    return AsyncSessionManager(config, plugins=chosen, autoload=False)


@pytest_asyncio.fixture
async def manager(db_url: str, schema: str) -> AsyncIterator[AsyncSessionManager]:
    m = make_manager(db_url, schema)
    await m.start()
    yield m
    await m.close()


async def create_tables(manager: AsyncSessionManager, metadata: MetaData) -> None:
    """Create every table of ``metadata`` in the manager's schema."""
    async with manager.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


class SessionTimeZone:
    """Test plugin: every connection of the manager runs with this ``TimeZone``."""

    name = "test-timezone"

    def __init__(self, zone: str) -> None:
        self.zone = zone

    def setup(self, manager: AsyncSessionManager) -> None:
        manager.bus.subscribe(EngineCreated, self._on_engine)

    def _on_engine(self, created: EngineCreated) -> None:
        statement = f"SET TIME ZONE '{self.zone}'"

        def on_connect(dbapi_connection: Any, record: Any) -> None:
            # Outside a transaction, so the setting lasts for the whole connection.
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            cursor = dbapi_connection.cursor()
            cursor.execute(statement)
            cursor.close()
            dbapi_connection.autocommit = autocommit

        event.listen(created.engine.sync_engine, "connect", on_connect)
