"""DatabaseContainer: composed as in the reference kit, started and stopped with the resources."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, AsyncSQLAlchemyUowTransaction
from fkit_core.errors import ConfigurationError
from fkit_core.settings import BasePostgresConfig
from fkit_di import DatabaseContainer, PrometheusMetricsContainer
from fkit_metrics import PostgresMetrics

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class Settings:
    """The application's settings, with the database's among them."""

    def __init__(self, postgres: BasePostgresConfig) -> None:
        self.postgres = postgres


class CreateUserUseCase:
    def __init__(self, uow: AsyncSQLAlchemyUnitOfWork[Any], table: str) -> None:
        self.uow = uow
        self.table = table

    async def execute(self, v: int) -> None:
        async with self.uow.transaction() as tx:
            await tx.session.execute(text(f"INSERT INTO {self.table} VALUES (:v)"), {"v": v})


class AppContainer(containers.DeclarativeContainer):
    """The reference kit's composition, line for line."""

    postgres = providers.Dependency(instance_of=BasePostgresConfig)
    table = providers.Dependency(instance_of=str)

    config = providers.Singleton(Settings, postgres=postgres)

    metrics = providers.Container(
        PrometheusMetricsContainer,
        postgres_settings=config.provided.postgres,
        default_prefix="myapp",
        registry=providers.Singleton(CollectorRegistry),
    )

    database = providers.Container(
        DatabaseContainer,
        postgres_config=config.provided.postgres,
        metrics=metrics.postgres_metrics,
        autoload=False,
    )

    create_user_use_case = providers.Factory(CreateUserUseCase, uow=database.uow, table=table)


@pytest.mark.asyncio
async def test_the_reference_composition_starts_uses_and_stops_the_manager(
    config: BasePostgresConfig,
    app_name: str,
    table: str,
    committed: Callable[[], Awaitable[list[int]]],
    connections_gone: Callable[[], Awaitable[bool]],
) -> None:
    container = AppContainer(postgres=config, table=table)
    await container.init_resources()

    manager = container.database.session_manager()
    assert isinstance(manager, AsyncSessionManager)
    assert manager.state == "started"
    assert manager.config is config
    metrics = container.metrics.postgres_metrics()
    assert manager.plugins == (metrics,)
    assert isinstance(metrics, PostgresMetrics)
    assert metrics.prefix == "myapp"
    # After init_resources() everything is a plain object, as in the reference kit.
    use_case = container.create_user_use_case()
    assert use_case.uow is not container.create_user_use_case().uow  # a Factory
    assert container.database.engine() is manager.engine
    assert container.database.session_maker() is manager.session_maker
    await use_case.execute(1)
    assert await committed() == [1]
    # The settings' application_name is the default `service` label.
    labels = {"manager": "default", "engine": "primary", "service": app_name}
    assert metrics.registry.get_sample_value("myapp_postgres_pool_size", labels) == 5

    await container.shutdown_resources()

    assert manager.state == "closed"
    assert await connections_gone()


@pytest.mark.asyncio
async def test_a_new_manager_after_a_restart_of_the_resources(config: BasePostgresConfig) -> None:
    container = AppContainer(postgres=config, table="unused")
    await container.init_resources()
    first = container.database.session_manager()
    await container.shutdown_resources()
    await container.init_resources()
    second = container.database.session_manager()
    assert second is not first
    assert (first.state, second.state) == ("closed", "started")
    await container.shutdown_resources()
    assert second.state == "closed"


@pytest.mark.asyncio
async def test_settings_from_a_configuration_provider(
    db_url: str, app_name: str, connections: Callable[[], Awaitable[int]]
) -> None:
    class Container(containers.DeclarativeContainer):
        config = providers.Configuration()
        database = providers.Container(
            DatabaseContainer,
            postgres_config=config.postgres,
            autoload=False,
            manager_name=config.manager_name,
        )

    container = Container()
    container.config.from_dict(
        {
            "manager_name": "orders",
            "postgres": {"url": db_url, "query": {"application_name": app_name}},
        }
    )
    await container.init_resources()
    manager = container.database.session_manager()
    assert manager.name == "orders"
    async with manager.get_transaction() as session:
        await session.execute(text("SELECT 1"))
        assert await connections() == 1
    await container.shutdown_resources()


@pytest.mark.asyncio
async def test_unset_settings_are_read_from_the_environment(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FKIT_DB_URL", db_url)
    container = DatabaseContainer(autoload=False)
    await container.init_resources()
    manager = container.session_manager()
    assert manager.config.primary_url() == BasePostgresConfig(url=db_url).primary_url()
    await container.shutdown_resources()
    assert manager.state == "closed"


@pytest.mark.asyncio
async def test_settings_of_the_wrong_type_fail_at_init_with_a_clear_error() -> None:
    container = DatabaseContainer(postgres_config=42, autoload=False)
    with pytest.raises(ConfigurationError, match="BasePostgresConfig, a URL string or a mapping"):
        await container.init_resources()


class MyTransaction(AsyncSQLAlchemyUowTransaction):
    pass


class MyUnitOfWork(AsyncSQLAlchemyUnitOfWork[MyTransaction]):
    def __init__(self, session_maker: Any) -> None:
        super().__init__(session_maker, transaction_factory=MyTransaction)


@pytest.mark.asyncio
async def test_your_unit_of_work_class_and_transaction_class(db_url: str) -> None:
    container = DatabaseContainer(postgres_config=db_url, autoload=False, uow_class=MyUnitOfWork)
    await container.init_resources()
    uow = container.uow()
    assert type(uow) is MyUnitOfWork
    async with uow.transaction() as tx:
        assert type(tx) is MyTransaction
    container.uow_class.override(providers.Object(AsyncSQLAlchemyUnitOfWork))
    container.transaction_class.override(providers.Object(MyTransaction))
    plain = container.uow()
    assert type(plain) is AsyncSQLAlchemyUnitOfWork
    async with plain.transaction() as tx:
        assert type(tx) is MyTransaction
    container.uow_class.override(providers.Object(dict))
    with pytest.raises(ConfigurationError, match="uow_class must be"):
        container.uow()
    await container.shutdown_resources()
