"""SoftDeleteMixin: deleted rows stay out of ORM reads, relationship loads included."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import ForeignKey, MetaData, String, func, select, text
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship, selectinload

from fkit_types import (
    INCLUDE_DELETED,
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    SoftDeleteMixin,
)

from .conftest import create_tables

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager


class Base(BaseTable):
    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Folder(IdentityPrimaryKeyMixin, Base):
    __tablename__ = "folders"

    name: Mapped[str] = mapped_column(String(20))
    documents: Mapped[list[Document]] = relationship(
        back_populates="folder", order_by="Document.id"
    )


class Document(IdentityPrimaryKeyMixin, SoftDeleteMixin, Base):
    __tablename__ = "documents"

    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id"))
    title: Mapped[str] = mapped_column(String(20))
    folder: Mapped[Folder] = relationship(back_populates="documents")


async def _folder_with_one_deleted(manager: AsyncSessionManager) -> tuple[int, int, int]:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        folder = Folder(name="f")
        kept, gone = Document(title="kept", folder=folder), Document(title="gone", folder=folder)
        session.add_all([folder, kept, gone])
        await session.flush()
        gone.soft_delete()
        assert gone.is_deleted  # known before the flush
        assert gone.deleted_at is not None
    return folder.id, kept.id, gone.id


@pytest.mark.asyncio
async def test_selects_leave_deleted_rows_out(manager: AsyncSessionManager) -> None:
    _, kept_id, gone_id = await _folder_with_one_deleted(manager)
    async with manager.get_transaction() as session:
        stored = await session.scalar(
            text("SELECT deleted_at IS NOT NULL FROM documents WHERE id = :id"), {"id": gone_id}
        )
        assert stored is True  # soft: the row is still there
        assert [d.id for d in await session.scalars(select(Document))] == [kept_id]
        assert await session.scalar(select(func.count()).select_from(Document)) == 1
        assert await session.get(Document, gone_id) is None
        joined = await session.scalars(
            select(Folder.name).join(Folder.documents).where(Document.title == "gone")
        )
        assert list(joined) == []


@pytest.mark.asyncio
async def test_include_deleted_brings_them_back(manager: AsyncSessionManager) -> None:
    _, kept_id, gone_id = await _folder_with_one_deleted(manager)
    async with manager.get_transaction() as session:
        every = await session.scalars(
            select(Document).order_by(Document.id).execution_options(include_deleted=True)
        )
        assert [d.id for d in every] == [kept_id, gone_id]
        gone = await session.get(Document, gone_id, execution_options={INCLUDE_DELETED: True})
        assert gone is not None
        assert gone.is_deleted


@pytest.mark.asyncio
async def test_relationship_loads_leave_deleted_rows_out(manager: AsyncSessionManager) -> None:
    folder_id, _, _ = await _folder_with_one_deleted(manager)
    async with manager.get_transaction() as session:
        folder = await session.scalar(
            select(Folder).options(selectinload(Folder.documents)).where(Folder.id == folder_id)
        )
        assert folder is not None
        assert [d.title for d in folder.documents] == ["kept"]
    async with manager.get_transaction() as session:
        folder = await session.scalar(
            select(Folder).options(joinedload(Folder.documents)).where(Folder.id == folder_id)
        )
        assert folder is not None
        assert [d.title for d in folder.documents] == ["kept"]
    async with manager.get_transaction() as session:
        # A lazy load on an object no query loaded (so no criteria were propagated to it).
        fresh = Folder(name="fresh")
        first, second = Document(title="a", folder=fresh), Document(title="b", folder=fresh)
        session.add_all([fresh, first, second])
        await session.flush()
        second.soft_delete()
        await session.flush()
        session.expire(fresh, ["documents"])
        assert [d.title for d in await fresh.awaitable_attrs.documents] == ["a"]
    async with manager.get_transaction() as session:
        every = await session.scalar(
            select(Folder)
            .options(selectinload(Folder.documents))
            .where(Folder.id == folder_id)
            .execution_options(include_deleted=True)
        )
        assert every is not None
        assert [d.title for d in every.documents] == ["kept", "gone"]


@pytest.mark.asyncio
async def test_restore_and_refresh_of_a_deleted_object(manager: AsyncSessionManager) -> None:
    _, kept_id, gone_id = await _folder_with_one_deleted(manager)
    async with manager.get_transaction() as session:
        gone = await session.get(Document, gone_id, execution_options={"include_deleted": True})
        assert gone is not None
        session.expire(gone)
        assert await gone.awaitable_attrs.title == "gone"  # refreshing is never filtered
        gone.restore()
        assert not gone.is_deleted
    async with manager.get_transaction() as session:
        assert await session.get(Document, gone_id) is not None
        kept = await session.get(Document, kept_id)
        assert kept is not None
        at = datetime(2024, 1, 1, tzinfo=UTC)
        kept.soft_delete(at=at)
    async with manager.get_transaction() as session:
        stored = await session.scalar(
            select(Document.deleted_at)
            .where(Document.id == kept_id)
            .execution_options(include_deleted=True)
        )
        assert stored == at
