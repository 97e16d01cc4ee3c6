"""UnConstrainedEnum: text in the database, members in Python, and room to grow."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Mapped, mapped_column

from fkit_core.errors import ConfigurationError
from fkit_types import (
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    InvalidStoredValueError,
    InvalidValueError,
    UnConstrainedEnum,
)

from .conftest import create_tables

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager


class Role(str, enum.Enum):  # noqa: UP042 - the reference kit's spelling, kept on purpose
    ADMIN = "admin"
    USER = "user"
    GUEST = "guest"
    UNKNOWN = "unknown"


class RoleV2(enum.StrEnum):
    """A later release: one more member, longer than any before it."""

    ADMIN = "admin"
    USER = "user"
    GUEST = "guest"
    UNKNOWN = "unknown"
    BILLING_ADMINISTRATOR_WITH_A_LONG_NAME = "billing_administrator_with_a_long_name"


class Base(BaseTable):
    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Member(IdentityPrimaryKeyMixin, Base):
    __tablename__ = "members"

    role: Mapped[Role] = mapped_column(UnConstrainedEnum(Role))
    lenient: Mapped[Role | None] = mapped_column(
        UnConstrainedEnum(Role, fallback=Role.UNKNOWN), nullable=True
    )


# The same table as the newer release maps it, through Core.
members_v2 = Table(
    "members",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("role", UnConstrainedEnum(RoleV2)),
    Column("lenient", UnConstrainedEnum(RoleV2)),
)


@pytest.mark.asyncio
async def test_members_round_trip_as_text(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        member = Member(role=Role.ADMIN, lenient=None)
        session.add(member)
    async with manager.get_transaction() as session:
        stored = await session.scalar(
            text("SELECT role FROM members WHERE id = :id"), {"id": member.id}
        )
        assert stored == "admin"
        loaded = await session.get(Member, member.id)
        assert loaded is not None
        assert loaded.role is Role.ADMIN
        assert loaded.lenient is None
        found = await session.scalar(select(Member.id).where(Member.role == Role.ADMIN))
        assert found == member.id
        found = await session.scalar(select(Member.id).where(Member.role.in_(["admin", "user"])))
        assert found == member.id
        found = await session.scalar(select(Member.id).where(Member.role.like("adm%")))
        assert found == member.id


@pytest.mark.asyncio
async def test_the_column_is_unconstrained_text(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        column = await session.execute(
            text(
                "SELECT data_type, character_maximum_length FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'members' "
                "AND column_name = 'role'"
            )
        )
        assert column.one() == ("text", None)
        checks = await session.scalar(
            text(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'c' "
                "AND conrelid = 'members'::regclass"
            )
        )
        assert checks == 0
        enum_types = await session.scalar(
            text(
                "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE t.typtype = 'e' AND n.nspname = current_schema()"
            )
        )
        assert enum_types == 0


@pytest.mark.asyncio
async def test_a_longer_new_member_needs_no_migration(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)  # created by the older release
    longest = RoleV2.BILLING_ADMINISTRATOR_WITH_A_LONG_NAME
    assert len(longest.value) > max(len(m.value) for m in Role)
    async with manager.get_transaction() as session:
        new_id = await session.scalar(
            insert(members_v2).values(role=longest, lenient=longest).returning(members_v2.c.id)
        )
        assert (
            await session.scalar(select(members_v2.c.role).where(members_v2.c.id == new_id))
            is longest
        )
    async with manager.get_transaction() as session:
        # The older release reads the fallback where it has one...
        lenient = await session.scalar(select(Member.lenient).where(Member.id == new_id))
        assert lenient is Role.UNKNOWN
        # ...and a clear error where it has none.
        with pytest.raises(InvalidStoredValueError) as info:
            await session.scalar(select(Member.role).where(Member.id == new_id))
    assert info.value.column == "members.role"
    assert info.value.expected == "Role"
    assert "holds 'billing_administrator_with_a_long_name', which is not a value of Role" in str(
        info.value
    )


def test_assignment_accepts_members_and_values_only() -> None:
    member = Member(role="user")
    assert member.role is Role.USER
    member.role = Role.GUEST
    assert member.role is Role.GUEST
    with pytest.raises(InvalidValueError, match=r"members\.role expects a Role member") as info:
        member.role = "superuser"  # type: ignore[assignment]
    assert info.value.column == "members.role"
    with pytest.raises(InvalidValueError):
        member.role = RoleV2.BILLING_ADMINISTRATOR_WITH_A_LONG_NAME  # type: ignore[assignment]


@pytest.mark.asyncio
async def test_binding_an_unknown_value_fails(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        with pytest.raises(StatementError) as info:
            await session.execute(insert(Member.__table__).values(role="superuser"))
    assert isinstance(info.value.orig, InvalidValueError)


def test_bad_declarations_are_refused() -> None:
    class Numbers(enum.Enum):
        ONE = 1

    with pytest.raises(ConfigurationError, match="not strings: ONE"):
        UnConstrainedEnum(Numbers)
    with pytest.raises(ConfigurationError, match="not a member"):
        UnConstrainedEnum(Role, fallback=RoleV2.ADMIN)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs an Enum class"):
        UnConstrainedEnum(str)  # type: ignore[type-var]
    assert repr(UnConstrainedEnum(Role, fallback=Role.UNKNOWN)) == (
        "UnConstrainedEnum(Role, fallback=Role.UNKNOWN)"
    )
