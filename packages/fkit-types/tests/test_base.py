"""BaseTable: named constraints, an I/O-free repr, and the key mixins."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    MetaData,
    String,
    UniqueConstraint,
    insert,
    select,
    text,
)
from sqlalchemy.exc import MissingGreenlet, StatementError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from fkit_core.errors import ConfigurationError
from fkit_types import (
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
    VersionedMixin,
    mixin_mapper_args,
)

from .conftest import create_tables

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager


class Base(BaseTable):
    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Author(UUIDPrimaryKeyMixin, Base):
    __tablename__ = "authors"

    email: Mapped[str] = mapped_column(String(100), unique=True)
    age: Mapped[int] = mapped_column(CheckConstraint("age >= 0", name="non_negative_age"))
    nickname: Mapped[str | None] = mapped_column(String(50), index=True)


class Book(IdentityPrimaryKeyMixin, Base):
    __tablename__ = "books"
    __table_args__ = (UniqueConstraint("author_id", "title"),)

    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("authors.id"))
    title: Mapped[str] = mapped_column(String(100))


class Pair(Base):
    __tablename__ = "pairs"

    left: Mapped[int] = mapped_column(primary_key=True)
    right: Mapped[str] = mapped_column(String(10), primary_key=True)


@pytest.mark.asyncio
async def test_constraints_get_conventional_names(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        rows = await session.execute(
            text(
                "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                # PostgreSQL 18 lists NOT NULL constraints too: compare named ones only.
                "WHERE n.nspname = current_schema() AND c.contype IN ('c', 'f', 'p', 'u') "
                "ORDER BY conname"
            )
        )
        constraints = [row[0] for row in rows]
        indexes = await session.scalars(
            text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname LIKE 'ix_%'"
            )
        )
    assert constraints == [
        "ck_authors_non_negative_age",
        "fk_books_author_id_authors",
        "pk_authors",
        "pk_books",
        "pk_pairs",
        "uq_authors_email",
        "uq_books_author_id_title",
    ]
    assert list(indexes) == ["ix_authors_nickname"]


@pytest.mark.asyncio
async def test_uuid_keys_are_v7_and_known_before_flush(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    first = Author(email="a@x", age=1)
    second = Author(email="b@x", age=2)
    assert first.id.version == 7
    assert first.id < second.id  # time-ordered
    given = uuid.UUID("01900000-0000-7000-8000-000000000000")
    assert Author(email="c@x", age=3, id=given).id == given
    async with manager.get_transaction() as session:
        session.add_all([first, second])
        session.add(Book(author_id=first.id, title="linked before any flush"))
        core_id = await session.scalar(
            insert(Author).values(email="core@x", age=4).returning(Author.id)
        )
    assert core_id is not None
    assert core_id.version == 7  # Core inserts get one too
    async with manager.get_transaction() as session:
        assert await session.scalar(select(Book.author_id)) == first.id


@pytest.mark.asyncio
async def test_identity_keys_are_bigint_identity(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        column = await session.execute(
            text(
                "SELECT data_type, is_identity, identity_generation FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'books' "
                "AND column_name = 'id'"
            )
        )
        assert column.one() == ("bigint", "YES", "BY DEFAULT")
        author = Author(email="i@x", age=1)
        books = [Book(author_id=author.id, title=t) for t in ("one", "two")]
        session.add_all([author, *books])
        assert books[0].id is None
        await session.flush()
    assert books[0].id is not None
    assert books[1].id == books[0].id + 1


@pytest.mark.asyncio
async def test_repr_shows_the_key_and_never_loads(
    db_url: str, manager: AsyncSessionManager
) -> None:
    await create_tables(manager, Base.metadata)
    author = Author(email="r@x", age=1)
    book = Book(author_id=author.id, title="t")
    pair = Pair(left=1, right="b")
    assert repr(author) == f"<Author id={author.id!r}>"  # transient, key generated in Python
    assert repr(book) == "<Book id=None>"  # transient, key comes from the server
    assert repr(pair) == "<Pair left=1 right='b'>"
    # A sessionmaker that expires on commit: every attribute needs a load afterwards.
    maker = async_sessionmaker(manager.engine, expire_on_commit=True)
    async with maker() as session:
        session.add_all([author, book, pair])
        await session.commit()
        assert "title" not in book.__dict__  # expired
        with pytest.raises((MissingGreenlet, StatementError), match="greenlet_spawn"):
            _ = book.title  # what a repr reading attributes would run into
        assert repr(book) == f"<Book id={_identity(book)!r}>"
        assert repr(author) == f"<Author id={_identity(author)!r}>"
        assert repr(pair) == "<Pair left=1 right='b'>"
        await session.delete(await session.get(Pair, (1, "b")))
        await session.commit()
    assert repr(pair) == "<Pair left=1 right='b'>"  # deleted and detached


def _identity(obj: Any) -> Any:
    from sqlalchemy import inspect

    identity = inspect(obj).identity
    assert identity is not None
    return identity[0]


def test_a_model_that_hides_the_mixins_mapper_args_is_refused() -> None:
    class Isolated(DeclarativeBase):  # its own registry: nothing leaks into other tests
        pass

    with pytest.raises(ConfigurationError, match="version_id_col") as info:

        class Hidden(IdentityPrimaryKeyMixin, VersionedMixin, TimestampMixin, Isolated):
            __tablename__ = "hidden"
            __mapper_args__ = {"confirm_deleted_rows": False}  # noqa: RUF012

    assert "eager_defaults=True" in str(info.value)
    assert "mixin_mapper_args" in str(info.value)


def test_merged_mapper_args_keep_the_mixins_working() -> None:
    class Isolated(DeclarativeBase):
        pass

    class Merged(IdentityPrimaryKeyMixin, VersionedMixin, TimestampMixin, Isolated):
        __tablename__ = "merged"

        @declared_attr.directive
        def __mapper_args__(cls) -> dict[str, Any]:
            return {**mixin_mapper_args(cls), "confirm_deleted_rows": False}

    mapper = Merged.__mapper__
    assert mapper.version_id_col is Merged.__table__.c.version
    assert mapper.eager_defaults is True
    assert mapper.confirm_deleted_rows is False


def test_mixins_work_on_a_base_of_your_own() -> None:
    class Isolated(DeclarativeBase):
        pass

    class Own(UUIDPrimaryKeyMixin, TimestampMixin, Isolated):
        __tablename__ = "own"

    assert Own().id.version == 7
    assert Own.__mapper__.eager_defaults is True
    column = Book.__table__.c.id
    assert isinstance(column.identity, Identity)
    assert isinstance(column.type, BigInteger)
