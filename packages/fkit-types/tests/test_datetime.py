"""UTCDateTime and TimestampMixin: right instants whatever the session's TimeZone is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import Column, MetaData, String, Table, insert, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Mapped, mapped_column

from fkit_types import (
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    InvalidValueError,
    NaiveDatetimeError,
    TimestampMixin,
    TypesPlugin,
    UTCDateTime,
)

from .conftest import SessionTimeZone, create_tables, make_manager

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fkit_core import AsyncSessionManager

# Neither is UTC; one is ahead of it, the other behind (and observes DST).
ZONES = ["Europe/Moscow", "America/Los_Angeles"]


class Base(BaseTable):
    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Meeting(IdentityPrimaryKeyMixin, TimestampMixin, Base):
    __tablename__ = "meetings"

    title: Mapped[str] = mapped_column(String(50))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None]  # BaseTable maps Mapped[datetime] to UTCDateTime


@pytest_asyncio.fixture(params=ZONES)
async def zoned(
    request: pytest.FixtureRequest, db_url: str, schema: str
) -> AsyncIterator[AsyncSessionManager]:
    """A manager whose every connection runs with a non-UTC session TimeZone."""
    manager = make_manager(db_url, schema, plugins=[TypesPlugin(), SessionTimeZone(request.param)])
    await manager.start()
    async with manager.get_transaction() as session:
        assert await session.scalar(text("SHOW TimeZone")) == request.param
    await create_tables(manager, Base.metadata)
    yield manager
    await manager.close()


def _is_utc(value: datetime) -> bool:
    return value.tzinfo is UTC


@pytest.mark.asyncio
async def test_aware_values_round_trip_as_utc(zoned: AsyncSessionManager) -> None:
    local = datetime(2024, 7, 1, 15, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 06:00 UTC
    async with zoned.get_transaction() as session:
        meeting = Meeting(title="t", starts_at=local)
        assert meeting.starts_at == local
        assert _is_utc(meeting.starts_at)  # converted on assignment
        session.add(meeting)
    async with zoned.get_transaction() as session:
        loaded = await session.get(Meeting, meeting.id)
        assert loaded is not None
        assert loaded is not meeting
        assert loaded.starts_at == datetime(2024, 7, 1, 6, 0, tzinfo=UTC)
        assert _is_utc(loaded.starts_at)
        utc_text = await session.scalar(
            text(
                "SELECT to_char(starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') "
                "FROM meetings WHERE id = :id"
            ),
            {"id": meeting.id},
        )
        assert utc_text == "2024-07-01 06:00"
        later = await session.scalar(
            select(Meeting.id).where(Meeting.starts_at > local - timedelta(hours=1))
        )
        assert later == meeting.id


@pytest.mark.asyncio
async def test_server_timestamps_are_the_true_instant(
    zoned: AsyncSessionManager, db_url: str, schema: str
) -> None:
    before = datetime.now(UTC)
    async with zoned.get_transaction() as session:
        meeting = Meeting(title="created", starts_at=before)
        session.add(meeting)
        await session.flush()
        transaction_now = await session.scalar(text("SELECT now()"))
    after = datetime.now(UTC)
    # Fetched through RETURNING: readable after the transaction without any I/O.
    assert _is_utc(meeting.created_at)
    assert _is_utc(meeting.updated_at)
    assert meeting.created_at == meeting.updated_at == transaction_now
    # The stored instant is the real one, not shifted by the zone's offset (3 or 7-8 hours);
    # one second of slack covers the clocks' resolution.
    assert before - timedelta(seconds=1) <= meeting.created_at <= after + timedelta(seconds=1)

    # A reader in UTC sees the same instant.
    utc_reader = make_manager(db_url, schema, plugins=[SessionTimeZone("UTC")])
    async with utc_reader, utc_reader.get_transaction() as session:
        seen = await session.scalar(select(Meeting.created_at).where(Meeting.id == meeting.id))
    assert seen == meeting.created_at


@pytest.mark.asyncio
async def test_updated_at_moves_on_every_update(zoned: AsyncSessionManager) -> None:
    async with zoned.get_transaction() as session:
        meeting = Meeting(title="v1", starts_at=datetime.now(UTC))
        session.add(meeting)
    created = meeting.created_at
    async with zoned.get_transaction() as session:
        meeting = await session.merge(meeting)
        meeting.title = "v2"
        await session.flush()
        orm_now = await session.scalar(text("SELECT now()"))
    assert meeting.updated_at == orm_now  # ORM update, value from RETURNING
    assert meeting.updated_at > created
    assert meeting.created_at == created
    async with zoned.get_transaction() as session:
        await session.execute(update(Meeting).where(Meeting.id == meeting.id).values(title="v3"))
        core_now = await session.scalar(text("SELECT now()"))
        stored = await session.scalar(select(Meeting.updated_at).where(Meeting.id == meeting.id))
    assert stored == core_now > orm_now  # Core update() too


@pytest.mark.asyncio
async def test_naive_datetimes_are_refused(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    naive = datetime(2024, 1, 1, 12, 0)
    with pytest.raises(NaiveDatetimeError, match=r"meetings\.starts_at got the naive datetime"):
        Meeting(title="n", starts_at=naive)
    meeting = Meeting(title="n", starts_at=datetime.now(UTC))
    with pytest.raises(NaiveDatetimeError) as info:
        meeting.ends_at = naive
    assert info.value.column == "meetings.ends_at"
    assert isinstance(info.value, InvalidValueError)
    with pytest.raises(InvalidValueError, match="expects an aware datetime, got str"):
        meeting.ends_at = "2024-01-01"  # type: ignore[assignment]
    async with manager.get_transaction() as session:
        with pytest.raises(StatementError) as statement_error:
            await session.execute(insert(Meeting).values(title="core", starts_at=naive))
        assert isinstance(statement_error.value.orig, NaiveDatetimeError)
        with pytest.raises(StatementError):
            await session.execute(select(Meeting).where(Meeting.starts_at < naive))


def test_base_table_maps_datetime_annotations_to_utc_datetime() -> None:
    assert isinstance(Meeting.__table__.c.ends_at.type, UTCDateTime)
    assert Meeting.__table__.c.ends_at.type.impl.timezone is True  # type: ignore[attr-defined]
    assert isinstance(Meeting.__table__.c.created_at.type, UTCDateTime)


def test_errors_name_the_column_even_for_annotation_mapped_types() -> None:
    meeting = Meeting(title="t", starts_at=datetime.now(UTC))
    naive = datetime(2024, 1, 1)
    with pytest.raises(NaiveDatetimeError) as created:
        meeting.created_at = naive
    with pytest.raises(NaiveDatetimeError) as ends:
        meeting.ends_at = naive
    assert created.value.column == "meetings.created_at"
    assert ends.value.column == "meetings.ends_at"


def test_one_instance_on_two_columns_names_neither() -> None:
    shared = UTCDateTime()
    table = Table("t", MetaData(), Column("a", shared), Column("b", shared))
    assert table.c.a.type.column_name is None  # type: ignore[attr-defined]
    with pytest.raises(NaiveDatetimeError, match=r"^a UTCDateTime\(\) column got"):
        shared.process_bind_param(datetime(2024, 1, 1), postgresql.dialect())
