"""Table locks: quoted names, blocking, nowait and timeouts, on real connections."""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import pytest_asyncio
from fkit_locks_test_helpers import wait_until
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, table, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fkit_core.errors import ConfigurationError, LockNotAvailableError
from fkit_core.events import LockAcquired, LockNotAcquired, LockReleased
from fkit_locks import (
    LockMode,
    LockModeError,
    LockNotAcquiredError,
    TableNameError,
    TableNotFoundError,
    TransactionRequiredError,
    lock_tables,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fkit_locks_test_helpers import LockView
    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core import AsyncSessionManager
    from fkit_core.events import Event

NAMES = ["order", "MixedCase", "with space", 'quote"d', "events", "parent", "child"]


class Schema:
    """A schema of this test's own, with awkwardly named tables and ORM classes on it."""

    def __init__(self) -> None:
        self.name = f"fkit_locks_{secrets.token_hex(4)}"
        self.metadata = MetaData(schema=self.name)
        self.tables = {
            name: Table(name, self.metadata, Column("id", Integer, primary_key=True))
            for name in NAMES
            if name not in ("parent", "child")
        }

        class Base(DeclarativeBase):
            metadata = self.metadata

        class Event(Base):
            __table__ = self.tables["events"]

        class Parent(Base):
            __tablename__ = "parent"
            id: Mapped[int] = mapped_column(primary_key=True)
            kind: Mapped[str]
            __mapper_args__: ClassVar[dict[str, Any]] = {
                "polymorphic_on": "kind",
                "polymorphic_identity": "p",
            }

        class Child(Parent):
            __tablename__ = "child"
            id: Mapped[int] = mapped_column(ForeignKey(Parent.id), primary_key=True)
            __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "c"}

        self.Event, self.Parent, self.Child = Event, Parent, Child

    def regclass(self, name: str) -> str:
        """The server-side quoted name, for ``to_regclass`` (independent of the code under test)."""
        quoted = name.replace('"', '""')
        return f'"{self.name}"."{quoted}"'


@pytest_asyncio.fixture
async def schema(manager: AsyncSessionManager) -> AsyncIterator[Schema]:
    made = Schema()
    async with manager.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{made.name}"'))
        await conn.run_sync(made.metadata.create_all)
    yield made
    async with manager.engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{made.name}" CASCADE'))


async def my_locks(locks: LockView, schema: Schema, session: AsyncSession, name: str) -> set[str]:
    pid = int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    rows = await locks.relation(schema.regclass(name))
    return {mode for p, mode, granted in rows if p == pid and granted}


@pytest.mark.asyncio
async def test_classes_tables_and_names_are_locked_until_the_transaction_ends(
    manager: AsyncSessionManager, locks: LockView, schema: Schema
) -> None:
    targets = [schema.Event, schema.tables["order"], f"{schema.name}.MixedCase"]
    async with manager.get_transaction() as session:
        async with lock_tables(session, targets, LockMode.EXCLUSIVE) as yielded:
            assert yielded is session
            for name in ("events", "order", "MixedCase"):
                assert await my_locks(locks, schema, session, name) == {"ExclusiveLock"}
        # Still held after the block: table locks last as long as the transaction.
        assert await my_locks(locks, schema, session, "order") == {"ExclusiveLock"}
    for name in ("events", "order", "MixedCase"):
        assert await locks.relation(schema.regclass(name)) == []


@pytest.mark.asyncio
async def test_awkward_names_are_quoted_not_interpreted(
    manager: AsyncSessionManager, locks: LockView, schema: Schema
) -> None:
    names = [f"{schema.name}.{name}" for name in ("order", "with space", 'quote"d')]
    async with manager.get_transaction() as session, lock_tables(session, names, "share"):
        for name in ("order", "with space", 'quote"d'):
            assert await my_locks(locks, schema, session, name) == {"ShareLock"}


@pytest.mark.asyncio
async def test_a_joined_inheritance_class_locks_every_table_it_is_stored_in(
    manager: AsyncSessionManager, locks: LockView, schema: Schema
) -> None:
    async with manager.get_transaction() as session, lock_tables(session, schema.Child):
        assert await my_locks(locks, schema, session, "parent") == {"ShareUpdateExclusiveLock"}
        assert await my_locks(locks, schema, session, "child") == {"ShareUpdateExclusiveLock"}


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", list(LockMode))
async def test_every_mode_takes_that_mode(
    manager: AsyncSessionManager, locks: LockView, schema: Schema, mode: LockMode
) -> None:
    spelled = mode.value.lower().replace(" ", "_")  # "access_exclusive": by name, any case
    async with (
        manager.get_transaction() as session,
        lock_tables(session, schema.tables["events"], spelled),
    ):
        assert await my_locks(locks, schema, session, "events") == {mode.pg_name}


@pytest.mark.asyncio
async def test_a_second_transaction_waits_for_the_first(
    manager: AsyncSessionManager, locks: LockView, schema: Schema
) -> None:
    order: list[str] = []
    events = schema.tables["events"]

    async def writer() -> None:
        async with (
            manager.get_transaction() as session,
            lock_tables(session, events, LockMode.ROW_EXCLUSIVE),
        ):
            order.append("second locked")

    async with (
        manager.get_transaction() as first,
        lock_tables(first, events, LockMode.EXCLUSIVE),
    ):
        task = asyncio.create_task(writer())
        await wait_until(lambda: _waiting(locks, schema), "the second transaction queues")
        order.append("first commits")
    await task
    assert order == ["first commits", "second locked"]


async def _waiting(locks: LockView, schema: Schema) -> bool:
    rows = await locks.relation(schema.regclass("events"))
    return any(not granted for _, _, granted in rows)


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["nowait", "timeout", "timeout=0"])
async def test_nowait_and_timeouts_fail_cleanly_and_leave_the_transaction_usable(
    manager: AsyncSessionManager, schema: Schema, events: list[Event], how: str
) -> None:
    options: dict[str, Any] = {
        "nowait": {"nowait": True},
        "timeout": {"timeout": 0.05},
        "timeout=0": {"timeout": 0},
    }[how]
    async with (
        manager.get_transaction() as first,
        lock_tables(first, schema.Event, "EXCLUSIVE"),
        manager.get_transaction(lock_timeout=9) as second,
    ):
        with pytest.raises(LockNotAcquiredError) as caught:
            async with lock_tables(second, schema.Event, LockMode.SHARE, **options):
                pytest.fail("the block must not run")
        assert isinstance(caught.value, LockNotAvailableError)
        assert caught.value.scope == "table"
        assert caught.value.shared is True
        assert caught.value.timeout == options.get("timeout", 0)
        assert f"the SHARE table lock on {schema.name}.events was not acquired" in str(caught.value)
        assert (await second.execute(text("SHOW lock_timeout"))).scalar_one() == "9s"
        assert (await second.execute(text("SELECT 1"))).scalar_one() == 1
    refused = [e for e in events if isinstance(e, LockNotAcquired)]
    assert [(e.scope, e.shared) for e in refused] == [("table", True)]
    assert schema.name in refused[0].key


@pytest.mark.asyncio
async def test_an_acquired_timed_lock_puts_lock_timeout_back(
    manager: AsyncSessionManager, schema: Schema
) -> None:
    async with manager.get_transaction() as session:
        before = (await session.execute(text("SHOW lock_timeout"))).scalar_one()
        async with lock_tables(session, schema.Event, timeout=5):
            assert (await session.execute(text("SHOW lock_timeout"))).scalar_one() == before


@pytest.mark.asyncio
@pytest.mark.parametrize("form", ["str", "str with schema", "Table"])
async def test_a_name_carrying_sql_is_just_a_missing_table(
    manager: AsyncSessionManager, schema: Schema, form: str
) -> None:
    evil = f'events"; DROP TABLE "{schema.name}"."order"; --'
    target: object = {
        "str": evil.replace(".", " "),  # no dot: all of it is the table name
        "str with schema": f"{schema.name}.{evil}",  # the schema exists, the table does not
        "Table": table(evil, schema=schema.name),
    }[form]
    with pytest.raises(TableNotFoundError) as caught:
        async with (
            manager.get_transaction() as session,
            lock_tables(session, [schema.Event, target]),  # type: ignore[list-item]
        ):
            pass
    assert caught.value.sqlstate == "42P01"
    assert "does not exist" in str(caught.value)
    assert "DROP TABLE" in str(caught.value)  # named, as given
    async with manager.get_transaction() as session:
        found = await session.execute(
            text("SELECT to_regclass(:n)"), {"n": schema.regclass("order")}
        )
        assert found.scalar_one() is not None


@pytest.mark.asyncio
async def test_a_missing_schema_is_reported_too(manager: AsyncSessionManager) -> None:
    with pytest.raises(TableNotFoundError, match="schema") as caught:
        async with (
            manager.get_transaction() as session,
            lock_tables(session, "no_such_schema_here.events"),
        ):
            pass
    assert caught.value.sqlstate == "3F000"
    assert caught.value.tables == ("no_such_schema_here.events",)


@pytest.mark.asyncio
async def test_table_locks_report_on_the_bus(
    manager: AsyncSessionManager, schema: Schema, events: list[Event]
) -> None:
    async with manager.get_transaction() as session:
        async with lock_tables(session, [schema.Event, schema.tables["order"]], "ACCESS SHARE"):
            pass
        assert not [e for e in events if isinstance(e, LockReleased)]
    acquired = [e for e in events if isinstance(e, LockAcquired)]
    released = [e for e in events if isinstance(e, LockReleased)]
    expected = f'{schema.name}.events, {schema.name}."order"'
    assert [(e.key, e.scope, e.shared) for e in acquired] == [(expected, "table", True)]
    assert [(e.key, e.scope, e.shared) for e in released] == [(expected, "table", True)]


@pytest.mark.asyncio
async def test_outside_a_transaction_it_refuses_clearly(manager: AsyncSessionManager) -> None:
    async with manager.get_session() as session:
        with pytest.raises(TransactionRequiredError, match="lock_tables"):
            async with lock_tables(session, "events"):
                pass


@pytest.mark.parametrize("mode", ["exclusiv", "", "ROW", 3, None])
def test_an_unknown_mode_is_refused_with_the_list_of_modes(mode: object) -> None:
    with pytest.raises(LockModeError, match=r"ACCESS SHARE, ROW SHARE, .*ACCESS EXCLUSIVE"):
        LockMode(mode)


@pytest.mark.parametrize(
    ("spelled", "mode"),
    [
        ("access exclusive", LockMode.ACCESS_EXCLUSIVE),
        ("ACCESS_EXCLUSIVE", LockMode.ACCESS_EXCLUSIVE),
        ("  Share   Row-Exclusive ", LockMode.SHARE_ROW_EXCLUSIVE),
        ("share", LockMode.SHARE),
        (LockMode.ROW_SHARE, LockMode.ROW_SHARE),
    ],
)
def test_modes_are_accepted_by_name(spelled: str, mode: LockMode) -> None:
    assert LockMode(spelled) is mode


def test_all_eight_modes_and_which_are_shared() -> None:
    assert [m.value for m in LockMode] == [
        "ACCESS SHARE",
        "ROW SHARE",
        "ROW EXCLUSIVE",
        "SHARE UPDATE EXCLUSIVE",
        "SHARE",
        "SHARE ROW EXCLUSIVE",
        "EXCLUSIVE",
        "ACCESS EXCLUSIVE",
    ]
    assert [m.name for m in LockMode if not m.self_conflicting] == [
        "ACCESS_SHARE",
        "ROW_SHARE",
        "ROW_EXCLUSIVE",
        "SHARE",
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("", "empty"),
        (".events", "empty"),
        ("bad\x00name", "NUL"),
        ("x" * 64, "longer than"),
        (table("y" * 64), "longer than"),
        (42, "cannot lock"),
        (object, "cannot lock"),
        ([], "at least one"),
    ],
)
async def test_things_that_cannot_name_a_table_are_refused_before_any_sql(
    manager: AsyncSessionManager, target: object, message: str
) -> None:
    async with manager.get_transaction() as session:
        with pytest.raises(TableNameError, match=message):
            lock_tables(session, target)  # type: ignore[arg-type]


def test_nowait_and_timeout_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        lock_tables(None, "t", nowait=True, timeout=1)  # type: ignore[arg-type]
