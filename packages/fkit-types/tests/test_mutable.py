"""PydanticJSONB(mutable=True): changes made in place are written like reassignments."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel
from sqlalchemy import MetaData, event, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from fkit_types import (
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    PydanticJSONB,
    TypesSession,
)

from .conftest import create_tables, make_manager

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager


class Address(BaseModel):
    city: str


class Prefs(BaseModel):
    theme: str
    address: Address
    tags: list[str] = []


class Line(BaseModel):
    sku: str
    qty: int


class Base(BaseTable):
    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Profile(IdentityPrimaryKeyMixin, Base):
    __tablename__ = "profiles"

    prefs: Mapped[Prefs] = mapped_column(PydanticJSONB(Prefs, mutable=True))
    lines: Mapped[list[Line]] = mapped_column(PydanticJSONB(list[Line], mutable=True))
    frozen: Mapped[Prefs] = mapped_column(PydanticJSONB(Prefs))  # not tracked


def _prefs() -> Prefs:
    return Prefs(theme="dark", address=Address(city="Oslo"))


async def _new_profile(manager: AsyncSessionManager) -> int:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        profile = Profile(prefs=_prefs(), lines=[Line(sku="a", qty=1)], frozen=_prefs())
        session.add(profile)
    return profile.id


async def _stored(manager: AsyncSessionManager, profile_id: int) -> Profile:
    async with manager.get_session() as session:
        profile = await session.get(Profile, profile_id)
        assert profile is not None
        return profile


@pytest.mark.asyncio
async def test_in_place_changes_are_committed(manager: AsyncSessionManager) -> None:
    profile_id = await _new_profile(manager)
    async with manager.get_transaction() as session:
        profile = await session.get(Profile, profile_id)
        assert profile is not None
        profile.prefs.theme = "x"
        profile.prefs.address.city = "Rome"  # nested model
        profile.prefs.tags.append("new")  # list inside the model
        profile.lines[0].qty = 5  # a model inside a list
        profile.lines.append(Line(sku="b", qty=2))
    stored = await _stored(manager, profile_id)
    assert stored.prefs == Prefs(theme="x", address=Address(city="Rome"), tags=["new"])
    assert stored.lines == [Line(sku="a", qty=5), Line(sku="b", qty=2)]


@pytest.mark.asyncio
async def test_untracked_columns_ignore_in_place_changes(manager: AsyncSessionManager) -> None:
    profile_id = await _new_profile(manager)
    async with manager.get_transaction() as session:
        profile = await session.get(Profile, profile_id)
        assert profile is not None
        profile.frozen.theme = "changed"
    assert (await _stored(manager, profile_id)).frozen.theme == "dark"


@pytest.mark.asyncio
async def test_an_unchanged_object_is_not_updated(manager: AsyncSessionManager) -> None:
    profile_id = await _new_profile(manager)
    statements: list[str] = []
    async with manager.get_transaction() as session:
        profile = await session.get(Profile, profile_id)
        assert profile is not None
        profile.prefs.theme = "dark"  # the same value: no net change
        assert not session.is_modified(profile)
        connection = await session.connection()
        event.listen(
            connection.sync_connection,
            "before_cursor_execute",
            lambda *args: statements.append(args[2]),
        )
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE")]


@pytest.mark.asyncio
async def test_autoflush_before_a_query_sees_the_change(manager: AsyncSessionManager) -> None:
    profile_id = await _new_profile(manager)
    async with manager.get_transaction() as session:
        profile = await session.get(Profile, profile_id)
        assert profile is not None
        profile.prefs.theme = "queried"
        found = await session.scalar(
            select(Profile.id).where(Profile.prefs["theme"].astext == "queried")
        )
        assert found == profile_id


@pytest.mark.asyncio
async def test_an_explicit_flush_writes_the_change(manager: AsyncSessionManager) -> None:
    profile_id = await _new_profile(manager)
    async with manager.get_transaction() as session:
        assert isinstance(session.sync_session, TypesSession)  # installed by the plugin
        profile = await session.get(Profile, profile_id)
        assert profile is not None
        profile.prefs.address.city = "Flushed"
        await session.flush()
        raw = await session.scalar(
            text("SELECT prefs->'address'->>'city' FROM profiles WHERE id = :id"),
            {"id": profile_id},
        )
        assert raw == "Flushed"


@pytest.mark.asyncio
async def test_changes_made_while_detached_are_written_after_add(
    manager: AsyncSessionManager,
) -> None:
    profile_id = await _new_profile(manager)
    profile = await _stored(manager, profile_id)  # its session is closed: detached
    profile.prefs.theme = "offline"
    async with manager.get_transaction() as session:
        session.add(profile)
    assert (await _stored(manager, profile_id)).prefs.theme == "offline"


@pytest.mark.asyncio
async def test_changes_after_a_flush_of_a_new_object_are_written(
    manager: AsyncSessionManager,
) -> None:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        profile = Profile(prefs=_prefs(), lines=[], frozen=_prefs())
        session.add(profile)
        await session.flush()
        profile.lines.append(Line(sku="late", qty=1))
    assert (await _stored(manager, profile.id)).lines == [Line(sku="late", qty=1)]


@pytest.mark.asyncio
async def test_tracking_works_on_a_plain_session_class(db_url: str, schema: str) -> None:
    """Without the plugin's TypesSession, commit and autoflush still see in-place changes."""
    manager = make_manager(db_url, schema, plugins=[])
    await manager.start()
    try:
        profile_id = await _new_profile(manager)
        maker = async_sessionmaker(manager.engine, expire_on_commit=False)
        async with maker() as session:
            assert type(session.sync_session) is not TypesSession
            profile = await session.get(Profile, profile_id)
            assert profile is not None
            profile.prefs.theme = "plain"
            await session.commit()
        assert (await _stored(manager, profile_id)).prefs.theme == "plain"
    finally:
        await manager.close()
