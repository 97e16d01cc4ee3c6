"""Property tests: any nested model PydanticJSONB accepts reads back equal, on a real server."""

from __future__ import annotations

import asyncio
import enum
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlalchemy import MetaData, select, text
from sqlalchemy.orm import Mapped, mapped_column

from fkit_types import (
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    PydanticJSONB,
    json_dumps,
)

from .conftest import create_tables, make_manager

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Tag(BaseModel):
    name: str
    weight: float


class Address(BaseModel):
    street: str
    city: str
    zip_code: str | None = None


class Person(BaseModel):
    name: str
    age: int
    balance: Decimal
    born: datetime
    id: uuid.UUID
    color: Color
    tags: list[Tag]
    home: Address
    work: Address | None
    scores: dict[str, int]
    friends: list[Person] = []


class Base(BaseTable):
    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Record(IdentityPrimaryKeyMixin, Base):
    __tablename__ = "records"

    person: Mapped[Person] = mapped_column(PydanticJSONB(Person))
    people: Mapped[list[Person]] = mapped_column(PydanticJSONB(list[Person]))


# JSONB cannot hold U+0000, and lone surrogates are not UTF-8.
texts = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=20)
# Fixed offsets: a ZoneInfo time in a DST fold never compares equal to the same instant in
# another zone (PEP 495), and pydantic writes offsets to the minute (no local mean time).
zones = st.sampled_from([UTC, *(timezone(timedelta(minutes=m)) for m in (180, -420, 330, -570))])
addresses = st.builds(Address, street=texts, city=texts, zip_code=st.none() | texts)


def _people(friends: st.SearchStrategy[list[Person]]) -> st.SearchStrategy[Person]:
    return st.builds(
        Person,
        name=texts,
        age=st.integers(),
        balance=st.decimals(allow_nan=False, allow_infinity=False, places=6),
        born=st.datetimes(min_value=datetime(1900, 1, 1), timezones=zones),
        id=st.uuids(),
        color=st.sampled_from(Color),
        tags=st.lists(
            st.builds(Tag, name=texts, weight=st.floats(allow_nan=False, allow_infinity=False)),
            max_size=3,
        ),
        home=addresses,
        work=st.none() | addresses,
        scores=st.dictionaries(texts, st.integers(-(2**63), 2**63), max_size=3),
        friends=friends,
    )


# Nested two levels deep: people whose friends have friends.
people = _people(st.lists(_people(st.lists(_people(st.just([])), max_size=2)), max_size=2))


@settings(max_examples=300, deadline=None, database=None)
@given(person=people)
def test_the_column_type_round_trips_without_a_server(person: Person) -> None:
    """Validate, serialize as the engine does, read back: equal, for many more cases."""
    column_type = PydanticJSONB(Person)
    stored = json_dumps(column_type.process_bind_param(person, None))  # type: ignore[arg-type]
    assert column_type.process_result_value(stored, None) == person  # type: ignore[arg-type]


async def _start(db_url: str) -> tuple[AsyncSessionManager, str]:
    schema = f"fkt_{uuid.uuid4().hex[:16]}"
    admin = make_manager(db_url, "public", plugins=[])
    async with admin, admin.get_transaction() as session:
        await session.execute(text(f'CREATE SCHEMA "{schema}"'))
    manager = make_manager(db_url, schema)
    await manager.start()
    await create_tables(manager, Base.metadata)
    return manager, schema


async def _stop(manager: AsyncSessionManager, schema: str) -> None:
    async with manager.get_transaction() as session:
        await session.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await manager.close()


async def _round_trip(manager: AsyncSessionManager, person: Person, people: list[Person]) -> None:
    async with manager.get_transaction() as session:
        record = Record(person=person, people=people)
        session.add(record)
    async with manager.get_transaction() as session:
        row = (await session.execute(select(Record).where(Record.id == record.id))).scalar_one()
        assert row is not record
        assert row.person == person
        assert row.people == people


def test_nested_models_round_trip_through_the_server(db_url: str) -> None:
    # Hypothesis drives a synchronous function, so the test runs its own event loop and
    # keeps one manager (and schema) for all examples.
    with asyncio.Runner() as runner:
        manager, schema = runner.run(_start(db_url))
        try:

            @settings(
                max_examples=40,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            )
            @given(person=people, others=st.lists(people, max_size=2))
            def check(person: Person, others: list[Person]) -> None:
                runner.run(_round_trip(manager, person, others))

            check()
        finally:
            runner.run(_stop(manager, schema))
