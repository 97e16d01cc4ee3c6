"""PydanticJSONB and the engine's JSON serializer, on a real server through both drivers."""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Mapped, mapped_column

from fkit_types import (
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    InvalidStoredValueError,
    InvalidValueError,
    PydanticJSONB,
    json_dumps,
)

from .conftest import create_tables

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip_code: str = Field(alias="zipCode")


class Preferences(BaseModel):
    theme: str
    language: str = "en"
    notifications: bool = True
    address: Address | None = None
    tags: list[str] = []


class Item(BaseModel):
    sku: str
    qty: int = Field(gt=0)
    price: Decimal


class StrictEvent(BaseModel):
    """Strict models reject strings for datetimes in Python mode, not in JSON mode."""

    model_config = ConfigDict(strict=True)
    at: datetime
    id: uuid.UUID
    took: timedelta


Scores = dict[str, Annotated[int, Field(ge=0)]]


class Base(BaseTable):
    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(IdentityPrimaryKeyMixin, Base):
    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(50))
    prefs: Mapped[Preferences] = mapped_column(PydanticJSONB(Preferences))
    items: Mapped[list[Item]] = mapped_column(PydanticJSONB(list[Item]), default=list)
    scores: Mapped[dict[str, int] | None] = mapped_column(PydanticJSONB(Scores), nullable=True)
    event: Mapped[StrictEvent | None] = mapped_column(PydanticJSONB(StrictEvent), nullable=True)
    raw: Mapped[Any] = mapped_column(JSONB, nullable=True)


def _prefs(theme: str = "dark") -> Preferences:
    return Preferences(theme=theme, address=Address(city="Oslo", zipCode="0150"), tags=["a"])


@pytest.mark.asyncio
async def test_model_list_and_adapter_types_round_trip(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    event = StrictEvent(
        at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC), id=uuid.uuid4(), took=timedelta(seconds=90)
    )
    items = [
        Item(sku="a", qty=2, price=Decimal("9.990")),
        Item(sku="b", qty=1, price=Decimal("0.1")),
    ]
    async with manager.get_transaction() as session:
        account = Account(name="ann", prefs=_prefs(), items=items, scores={"x": 3}, event=event)
        session.add(account)
    async with manager.get_transaction() as session:
        loaded = await session.get(Account, account.id)
        assert loaded is not None
        assert loaded is not account
        assert loaded.prefs == _prefs()
        assert type(loaded.prefs) is Preferences
        assert loaded.items == items
        assert loaded.items[0].price == Decimal("9.990")  # exact, not a float
        assert loaded.scores == {"x": 3}
        assert loaded.event == event  # strict model: validated as JSON, not Python


@pytest.mark.asyncio
async def test_none_is_sql_null(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        account = Account(name="n", prefs=_prefs(), scores=None)
        session.add(account)
    async with manager.get_transaction() as session:
        is_null = await session.scalar(
            text("SELECT scores IS NULL FROM accounts WHERE id = :id"), {"id": account.id}
        )
        assert is_null is True
        assert (await session.get(Account, account.id)).scores is None  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_dict_assigned_becomes_the_model(manager: AsyncSessionManager) -> None:
    account = Account(
        name="d", prefs={"theme": "light", "address": {"city": "Rome", "zipCode": "1"}}
    )
    assert isinstance(account.prefs, Preferences)
    assert account.prefs.address == Address(city="Rome", zipCode="1")


@pytest.mark.asyncio
async def test_invalid_assignment_names_the_column_and_model(manager: AsyncSessionManager) -> None:
    account = Account(name="x", prefs=_prefs())
    with pytest.raises(InvalidValueError, match=r"accounts\.prefs expects Preferences") as info:
        account.prefs = {"language": "de"}  # type: ignore[assignment]
    assert info.value.column == "accounts.prefs"
    assert isinstance(info.value.__cause__, ValidationError)
    with pytest.raises(InvalidValueError, match=r"list\[.*Item\]"):
        account.items = [{"sku": "a", "qty": 0, "price": "1"}]  # type: ignore[list-item]


@pytest.mark.asyncio
async def test_a_model_broken_in_place_is_refused_on_write(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    items = [Item(sku="a", qty=1, price=Decimal(1))]
    items[0].qty = 0  # no validate_assignment: pydantic lets this through
    with pytest.raises(StatementError) as info:
        async with manager.get_transaction() as session:
            session.add(Account(name="bad", prefs=_prefs(), items=items))
    assert isinstance(info.value.orig, InvalidValueError)
    assert "accounts.items" in str(info.value.orig)
    assert "greater than 0" in str(info.value.orig)


@pytest.mark.asyncio
async def test_a_stored_row_that_no_longer_validates_raises(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        await session.execute(
            text(
                "INSERT INTO accounts (name, prefs, items) "
                """VALUES ('old', '{"colour": "vermilion"}', '[]')"""
            )
        )
    async with manager.get_transaction() as session:
        with pytest.raises(InvalidStoredValueError) as info:
            await session.scalars(select(Account))
    error = info.value
    assert error.column == "accounts.prefs"
    assert error.expected == "Preferences"
    assert "theme: Field required" in str(error)
    assert "vermilion" not in str(error)  # stored data stays out of the message
    assert isinstance(error.__cause__, ValidationError)


@pytest.mark.asyncio
async def test_where_clauses_on_json_paths(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    async with manager.get_transaction() as session:
        session.add_all(
            [
                Account(name="a", prefs=_prefs("dark"), items=[Item(sku="s1", qty=1, price=1)]),
                Account(
                    name="b",
                    prefs=Preferences(theme="light", address=Address(city="Rome", zipCode="1")),
                    items=[Item(sku="s2", qty=3, price=2)],
                ),
            ]
        )
    async with manager.get_transaction() as session:

        async def names(*where: Any) -> list[str]:
            rows = await session.scalars(select(Account.name).where(*where).order_by(Account.name))
            return list(rows)

        assert await names(Account.prefs["theme"].astext == "dark") == ["a"]
        assert await names(Account.prefs["address"]["city"].astext == "Rome") == ["b"]
        assert await names(Account.prefs[("address", "zipCode")].astext == "0150") == ["a"]
        assert await names(Account.prefs.contains({"theme": "light"})) == ["b"]
        assert await names(Account.prefs.has_key("address")) == ["a", "b"]
        assert await names(Account.items.contains([{"sku": "s2"}])) == ["b"]
        assert await names(Account.items[0]["qty"].as_integer() > 1) == ["b"]
        assert await names(Account.prefs == _prefs("dark")) == ["a"]
        element = await session.scalar(select(Account.prefs["address"]).where(Account.name == "a"))
        assert element == {"city": "Oslo", "zipCode": "0150"}  # an element is plain JSON


@pytest.mark.asyncio
async def test_core_statements_validate_both_ways(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    table = Account.__table__
    async with manager.get_transaction() as session:
        new_id = await session.scalar(
            insert(table)
            .values(name="core", prefs={"theme": "dark"}, items=[])
            .returning(table.c.id)
        )
        await session.execute(
            update(table).where(table.c.id == new_id).values(prefs=_prefs("blue"))
        )
        prefs = await session.scalar(select(table.c.prefs).where(table.c.id == new_id))
        assert prefs == _prefs("blue")
        with pytest.raises(StatementError) as info:
            await session.execute(insert(table).values(name="bad", prefs={"x": 1}, items=[]))
        assert isinstance(info.value.orig, InvalidValueError)


@pytest.mark.asyncio
async def test_engine_serializer_handles_models_and_scalars(manager: AsyncSessionManager) -> None:
    await create_tables(manager, Base.metadata)
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.UUID("0190f0f4-3c1a-7cc0-8000-000000000001")
    raw = {
        "model": Address(city="Oslo", zipCode="1"),
        "at": moment,
        "id": ident,
        "amount": Decimal("10.10"),
        "color": Color.RED,
        "set": {1},
    }
    async with manager.get_transaction() as session:
        session.add(Account(name="raw", prefs=_prefs(), raw=raw))
    async with manager.get_transaction() as session:
        stored = await session.scalar(select(Account.raw))
    assert stored == {
        "model": {"city": "Oslo", "zipCode": "1"},  # by alias, as PydanticJSONB stores
        "at": "2024-01-02T03:04:05Z",
        "id": str(ident),
        "amount": "10.10",
        "color": "red",
        "set": [1],
    }


def test_json_dumps_is_compact_json() -> None:
    value = {"n": 1, "when": datetime(2024, 1, 1, tzinfo=UTC), "d": Decimal("1.50")}
    assert json.loads(json_dumps(value)) == {"n": 1, "when": "2024-01-01T00:00:00Z", "d": "1.50"}
    assert json_dumps([1, "ø"]) == '[1,"ø"]'


def test_repr_and_python_type() -> None:
    assert (
        repr(PydanticJSONB(list[Item], mutable=True)) == "PydanticJSONB(list[Item], mutable=True)"
    )
    assert repr(PydanticJSONB(Scores)) == "PydanticJSONB(dict[str, int])"
    assert repr(PydanticJSONB(Address | None)) == "PydanticJSONB(Address | None)"
    assert PydanticJSONB(list[Item]).python_type is list
    assert PydanticJSONB(Preferences).python_type is Preferences


# Annotated metadata that is not hashable: SQLAlchemy cannot cache statements keyed on it.
Numbers = Annotated[list[int], {"note": "not hashable"}]
numbers = Table(
    "numbers",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("values", PydanticJSONB(Numbers)),
)


@pytest.mark.asyncio
async def test_unhashable_types_work_uncached(manager: AsyncSessionManager) -> None:
    column_type = numbers.c["values"].type
    assert isinstance(column_type, PydanticJSONB)
    assert column_type.cache_ok is False
    async with manager.engine.begin() as conn:
        await conn.run_sync(numbers.metadata.create_all)
    async with manager.get_transaction() as session:
        for row_id in (1, 2):  # the same statement twice: compiled again, not from the cache
            await session.execute(insert(numbers).values(id=row_id, values=[row_id, 3]))
        stored = await session.scalars(select(numbers.c["values"]).order_by(numbers.c.id))
        assert list(stored) == [[1, 3], [2, 3]]
