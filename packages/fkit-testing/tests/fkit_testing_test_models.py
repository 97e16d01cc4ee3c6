"""A small domain and its SQLAlchemy repository, for the contract tests of the fakes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fkit_core import AsyncSQLAlchemyUowTransaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


class Base(DeclarativeBase):
    pass


class NoteRow(Base):
    __tablename__ = "fkit_testing_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(200))
    mark: Mapped[int] = mapped_column(Integer, default=0)


@dataclass
class Note:
    id: int | None
    body: str
    mark: int = 0


class SqlNoteRepository:
    """The real repository: the same port as InMemoryRepository[Note, int]."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def save(self, note: Note) -> Note:
        row = NoteRow(id=note.id, body=note.body, mark=note.mark)
        if note.id is not None:
            row = await self.session.merge(row)
        else:
            self.session.add(row)
        await self.session.flush()
        note.id = row.id
        return note

    async def find_by_id(self, key: int) -> Note | None:
        row = await self.session.get(NoteRow, key, populate_existing=True)
        return None if row is None else Note(row.id, row.body, row.mark)

    async def delete(self, key: int) -> bool:
        row = await self.session.get(NoteRow, key)
        if row is None:
            return False
        await self.session.delete(row)
        await self.session.flush()
        return True

    async def list_all(self, limit: int = 100, offset: int = 0) -> list[Note]:
        rows = await self.session.scalars(
            select(NoteRow).order_by(NoteRow.id).limit(limit).offset(offset)
        )
        return [Note(r.id, r.body, r.mark) for r in rows]


class NotesTransaction(AsyncSQLAlchemyUowTransaction):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.notes = SqlNoteRepository(session)
