"""The `types` plugin: the engine's JSON serializer and the manager's session class."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from fkit_core import AsyncSessionManager, BasePostgresConfig
from fkit_types import TypesPlugin, TypesSession, json_dumps

from .conftest import make_manager

documents = Table(
    "documents", MetaData(), Column("id", Integer, primary_key=True), Column("body", JSONB)
)
BODY = {"at": datetime(2024, 1, 1, tzinfo=UTC)}


async def _write_and_read(manager: AsyncSessionManager) -> Any:
    async with manager.engine.begin() as conn:
        await conn.run_sync(documents.metadata.create_all)
    async with manager.get_transaction() as session:
        await session.execute(insert(documents).values(id=1, body=BODY))
        return await session.scalar(select(documents.c.body))


@pytest.mark.asyncio
async def test_engines_serialize_what_pydantic_understands(db_url: str, schema: str) -> None:
    async with make_manager(db_url, schema) as manager:
        assert await _write_and_read(manager) == {"at": "2024-01-01T00:00:00Z"}


@pytest.mark.asyncio
async def test_without_the_plugin_plain_json_refuses_datetimes(db_url: str, schema: str) -> None:
    async with make_manager(db_url, schema, plugins=[]) as manager:
        with pytest.raises((StatementError, TypeError), match="not JSON serializable"):
            await _write_and_read(manager)


def test_a_serializer_given_in_the_options_is_kept() -> None:
    manager = AsyncSessionManager(
        "postgresql+asyncpg://u@h/db", plugins=[TypesPlugin()], autoload=False
    )
    TypesPlugin().setup(manager)
    mine = repr
    options: dict[str, Any] = {"json_serializer": mine}
    manager.bus.apply_engine_options("primary", "primary", options)
    assert options["json_serializer"] is mine
    options = {}
    manager.bus.apply_engine_options("replica-1", "replica", options)
    assert options["json_serializer"] is json_dumps


@pytest.mark.asyncio
async def test_sessions_become_types_sessions(db_url: str, schema: str) -> None:
    async with make_manager(db_url, schema) as manager, manager.get_transaction() as session:
        assert type(session.sync_session) is TypesSession
    plain = make_manager(db_url, schema, plugins=[TypesPlugin(session_class=False)])
    async with plain, plain.get_transaction() as session:
        assert type(session.sync_session) is Session


@pytest.mark.asyncio
async def test_a_session_class_of_your_own_is_kept(db_url: str, schema: str) -> None:
    class Mine(Session):
        pass

    config = BasePostgresConfig(url=db_url)
    manager = AsyncSessionManager(
        config,
        plugins=[TypesPlugin()],
        autoload=False,
        session_options={"sync_session_class": Mine},
    )
    async with manager, manager.get_transaction() as session:
        assert type(session.sync_session) is Mine


def test_the_plugin_is_installed_under_the_name_types() -> None:
    # Read the entry point itself: loading every installed plugin would make this test
    # depend on the other fkit distributions in the environment.
    (entry_point,) = [
        ep
        for ep in metadata.entry_points(group="fkit.plugins", name="types")
        if ep.dist is not None and ep.dist.metadata["Name"] == "fkit-types"
    ]
    plugin = entry_point.load()
    assert isinstance(plugin, TypesPlugin)
    assert plugin.name == "types"
    assert plugin.requires_core == ">=0.1,<0.2"
