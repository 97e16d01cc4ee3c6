"""AsyncUnitOfWorkProvider: your Unit of Work and transaction type, resolved by type."""

# No `from __future__ import annotations`: dishka reads the providers' annotations.
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import pytest
from dishka import Provider, Scope, make_async_container, provide
from dishka.exceptions import NoFactoryError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, AsyncSQLAlchemyUowTransaction
from fkit_core.errors import ConfigurationError
from fkit_core.settings import BasePostgresConfig
from fkit_dishka import AsyncDatabaseProvider, AsyncUnitOfWorkProvider


class Values:
    """A repository over the test's table."""

    def __init__(self, session: AsyncSession, table: str) -> None:
        self.session = session
        self.table = table

    async def add(self, v: int) -> None:
        await self.session.execute(text(f"INSERT INTO {self.table} VALUES (:v)"), {"v": v})


class MyTransaction(AsyncSQLAlchemyUowTransaction):
    table = ""

    @property
    def values(self) -> Values:
        return Values(self.session, self.table)


class MyUnitOfWork(AsyncSQLAlchemyUnitOfWork[MyTransaction]):
    """As the reference kit's users write it: one argument, the sessionmaker (or manager)."""

    def __init__(self, session_maker: Any) -> None:
        super().__init__(session_maker, transaction_factory=MyTransaction, flush_before_commit=True)


class UseCase:
    def __init__(self, uow: MyUnitOfWork) -> None:
        self.uow = uow

    async def execute(self, v: int) -> None:
        async with self.uow.transaction() as tx:
            await tx.values.add(v)


class UseCaseProvider(Provider):
    scope = Scope.REQUEST

    @provide
    def use_case(self, uow: MyUnitOfWork) -> UseCase:
        return UseCase(uow)


TxT = TypeVar("TxT", bound=AsyncSQLAlchemyUowTransaction)


class GenericUnitOfWork(AsyncSQLAlchemyUnitOfWork[TxT], Generic[TxT]):
    pass


@pytest.fixture
def my_table(table: str) -> str:
    MyTransaction.table = table
    return table


@pytest.mark.asyncio
async def test_your_unit_of_work_is_resolved_by_its_type_and_by_the_generic(
    config: BasePostgresConfig, my_table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    container = make_async_container(
        AsyncDatabaseProvider(config, autoload=False),
        AsyncUnitOfWorkProvider(MyUnitOfWork),
        UseCaseProvider(),
    )
    uow = await container.get(MyUnitOfWork)
    assert type(uow) is MyUnitOfWork
    assert await container.get(AsyncSQLAlchemyUnitOfWork[MyTransaction]) is uow  # type: ignore[type-abstract]
    async with container() as request:
        use_case = await request.get(UseCase)
        assert use_case.uow is uow
        await use_case.execute(1)
    async with uow.transaction() as tx:  # built on the container's manager
        assert type(tx) is MyTransaction
        await tx.values.add(2)
    assert await committed() == [1, 2]
    manager = await container.get(AsyncSessionManager)
    await container.close()
    assert manager.state == "closed"


@pytest.mark.asyncio
async def test_the_transaction_type_is_provided_per_request_and_commits_or_rolls_back(
    config: BasePostgresConfig, my_table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    container = make_async_container(
        AsyncDatabaseProvider(config, autoload=False), AsyncUnitOfWorkProvider(MyUnitOfWork)
    )
    async with container() as request:
        tx = await request.get(MyTransaction)
        assert await request.get(MyTransaction) is tx
        await tx.values.add(1)
    with pytest.raises(ValueError, match="refused"):
        async with container() as request:
            tx = await request.get(MyTransaction)
            await tx.values.add(2)
            raise ValueError("refused")
    assert await committed() == [1]
    await container.close()


@pytest.mark.asyncio
async def test_the_default_provides_the_plain_unit_of_work(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    container = make_async_container(
        AsyncDatabaseProvider(config, autoload=False), AsyncUnitOfWorkProvider()
    )
    uow = await container.get(AsyncSQLAlchemyUnitOfWork)
    assert type(uow) is AsyncSQLAlchemyUnitOfWork
    assert await container.get(AsyncSQLAlchemyUnitOfWork[AsyncSQLAlchemyUowTransaction]) is uow  # type: ignore[type-abstract]
    async with uow.transaction() as tx:
        await tx.session.execute(text(f"INSERT INTO {table} VALUES (3)"))
    async with container() as request:
        tx = await request.get(AsyncSQLAlchemyUowTransaction)
        await tx.session.execute(text(f"INSERT INTO {table} VALUES (4)"))
    assert await committed() == [3, 4]
    await container.close()


@pytest.mark.asyncio
async def test_a_transaction_type_alone_gives_the_parametrized_unit_of_work(
    config: BasePostgresConfig, my_table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    container = make_async_container(
        AsyncDatabaseProvider(config, autoload=False),
        AsyncUnitOfWorkProvider(transaction_type=MyTransaction, provide_transaction=False),
    )
    uow = await container.get(AsyncSQLAlchemyUnitOfWork[MyTransaction])  # type: ignore[type-abstract]
    async with uow.transaction() as tx:
        assert type(tx) is MyTransaction
        await tx.values.add(5)
    assert await committed() == [5]
    with pytest.raises(NoFactoryError):
        await container.get(AsyncSQLAlchemyUnitOfWork)  # only the parametrized one
    async with container() as request:
        with pytest.raises(NoFactoryError):
            await request.get(MyTransaction)  # provide_transaction=False
    await container.close()


@pytest.mark.asyncio
async def test_a_generic_subclass_needs_its_transaction_type_spelled_out(
    config: BasePostgresConfig,
) -> None:
    with pytest.raises(ConfigurationError, match="transaction_type=MyTransaction"):
        AsyncUnitOfWorkProvider(GenericUnitOfWork)
    container = make_async_container(
        AsyncDatabaseProvider(config, autoload=False),
        AsyncUnitOfWorkProvider(GenericUnitOfWork, transaction_type=MyTransaction),
    )
    assert type(await container.get(GenericUnitOfWork)) is GenericUnitOfWork
    await container.close()


def test_types_that_are_not_fkit_units_of_work_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="AsyncSQLAlchemyUnitOfWork or a subclass"):
        AsyncUnitOfWorkProvider(dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="transaction_type must be"):
        AsyncUnitOfWorkProvider(transaction_type=dict)  # type: ignore[arg-type]
