"""Fixtures of the demo's tests: a database of its own on the fkit-testing server."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from fkit_core.settings import BasePostgresConfig

if TYPE_CHECKING:
    from collections.abc import Iterator


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def demo_url(fkit_database_url: str) -> Iterator[str]:
    """A fresh database for one test (asyncpg URL), dropped afterwards.

    The demo's tables and its money-conservation check must not meet rows of a run that
    happens at the same time on a shared server (FKIT_TEST_DATABASE_URL), so each test
    gets a database of its own.
    """
    name = f"fkit_demo_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(fkit_database_url, f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(fkit_database_url)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        asyncio.run(_admin(fkit_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def demo_config(demo_url: str) -> BasePostgresConfig:
    """The demo's settings for that database."""
    return BasePostgresConfig(url=demo_url)
