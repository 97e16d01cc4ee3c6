"""Fixtures shared by fkit-core's tests: a real PostgreSQL through fkit-testing's plugin."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from fkit_core import AsyncSessionManager

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fkit_core.events import Event

# The shared ORM models module (uniquely named, so no other package's tests clash with it).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    """Each database test runs on every supported driver (FKIT_TEST_DRIVER narrows it)."""
    return fkit_each_driver


@pytest.fixture
def db_url(fkit_each_driver_url: str) -> str:
    return fkit_each_driver_url


@pytest_asyncio.fixture
async def manager(db_url: str) -> AsyncIterator[AsyncSessionManager]:
    m = AsyncSessionManager(db_url, plugins=[], autoload=False)
    await m.start()
    yield m
    await m.close()


@pytest.fixture
def events(manager: AsyncSessionManager) -> list[Event]:
    """Every event the manager's bus emits during the test."""
    seen: list[Event] = []
    manager.bus.subscribe_all(seen.append)
    return seen


@pytest_asyncio.fixture
async def tables(manager: AsyncSessionManager) -> AsyncIterator[None]:
    """The ORM tables of tests/models.py, created for the test and dropped after it."""
    from fkit_core_test_models import Base

    async with manager.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield
    async with manager.engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
