"""Fixtures shared by fkit-core's tests: a real PostgreSQL through fkit-testing's plugin."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from fkit_core import AsyncSessionManager

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fkit_core.events import Event

# The shared ORM models module (uniquely named, so no other package's tests clash with it).
sys.path.insert(0, str(Path(__file__).parent))

# FKIT_TEST_DRIVER narrows the run to one driver (the nox matrix does); by default both run.
DRIVERS = (
    [os.environ["FKIT_TEST_DRIVER"]]
    if os.environ.get("FKIT_TEST_DRIVER")
    else ["asyncpg", "psycopg"]
)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    """Each database test runs on both supported drivers."""
    return str(request.param)


@pytest.fixture
def db_url(fkit_database_url: str, driver: str) -> str:
    return (
        make_url(fkit_database_url)
        .set(drivername=f"postgresql+{driver}")
        .render_as_string(hide_password=False)
    )


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
