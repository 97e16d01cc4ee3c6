"""Shutdown order: dependency-injector's bug reproduced, and fkit-di's design around it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from dependency_injector import containers, providers
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.util import greenlet_spawn

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork
from fkit_core.events import ManagerClosed, ManagerClosing, TransactionEnded
from fkit_di import DatabaseContainer, shutdown_resources
from fkit_di._resource import AsyncShutdownMarker, ManagerResource

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from sqlalchemy.pool import Pool

    from fkit_core.settings import BasePostgresConfig


def naive_container(
    db_url: str, app_name: str, log: list[str], pools: list[Pool]
) -> containers.DynamicContainer:
    """The reference kit's layout: engine Resource -> sessionmaker Singleton -> session Resource."""
    if make_url(db_url).get_driver_name() == "asyncpg":
        connect_args: dict[str, Any] = {"server_settings": {"application_name": app_name}}
    else:
        connect_args = {"application_name": app_name}

    async def engine_resource() -> AsyncIterator[AsyncEngine]:
        engine = create_async_engine(db_url, connect_args=connect_args)
        yield engine
        pools.append(engine.pool)  # kept, to close what the disposal leaves behind
        log.append("engine disposing")
        await engine.dispose()
        log.append("engine disposed")

    async def session_resource(maker: async_sessionmaker[Any]) -> AsyncIterator[Any]:
        session = maker()
        await session.execute(text("SELECT 1"))  # holds a connection, as a live session does
        yield session
        await session.close()
        log.append("session closed")

    container = containers.DynamicContainer()
    container.engine = providers.Resource(engine_resource)
    container.session_maker = providers.Singleton(async_sessionmaker, container.engine)
    container.session = providers.Resource(session_resource, container.session_maker)
    return container


@pytest.mark.asyncio
async def test_dependency_injector_disposes_the_engine_before_the_session_closes(
    db_url: str, app_name: str, connections: Callable[[], Awaitable[int]]
) -> None:
    # The upstream bug this package designs around (dependency-injector 4.49): resources
    # are ordered by direct links only, so with a Singleton between them both are shut
    # down in the same round, concurrently. If this starts failing, upstream fixed it.
    log: list[str] = []
    pools: list[Pool] = []
    container = naive_container(db_url, app_name, log, pools)
    await container.init_resources()
    await container.shutdown_resources()
    assert log.index("engine disposing") < log.index("session closed"), log
    # The harm: the session's connection went back to the disposed pool and stays open.
    assert await connections() == 1
    for pool in pools:  # close it, as SQLAlchemy does: inside its greenlet bridge
        await greenlet_spawn(pool.dispose)


@pytest.mark.asyncio
async def test_fkit_shutdown_resources_follows_links_through_the_singleton(
    db_url: str, app_name: str, connections_gone: Callable[[], Awaitable[bool]]
) -> None:
    log: list[str] = []
    container = naive_container(db_url, app_name, log, [])
    await container.init_resources()
    await shutdown_resources(container)
    assert log == ["session closed", "engine disposing", "engine disposed"]
    assert not container.engine.initialized
    assert not container.session.initialized
    assert await connections_gone()


def test_the_database_container_has_one_resource_and_derives_the_rest_from_it() -> None:
    # Regression guard for the layout: nothing but the manager holds something to dispose,
    # so no shutdown order inside the container can dispose an engine under a session.
    container = DatabaseContainer()
    resources = list(container.traverse(types=[providers.Resource]))
    holding = [r for r in resources if not isinstance(r, AsyncShutdownMarker)]
    assert holding == [container.session_manager]
    assert isinstance(container.session_manager, ManagerResource)
    for derived in (container.engine, container.session_maker, container.uow):
        assert not isinstance(derived, providers.Resource | providers.Singleton)
        assert container.session_manager in list(derived.related)


class App(containers.DeclarativeContainer):
    """An app container with a worker that writes as it stops."""

    config = providers.Dependency()
    database = providers.Container(DatabaseContainer, postgres_config=config, autoload=False)


def _worker(table: str, log: list[str]) -> Callable[[Any], AsyncIterator[str]]:
    async def worker(source: Any) -> AsyncIterator[str]:
        yield "worker"
        await asyncio.sleep(0.01)  # stopping takes a moment (say, joining a task) ...
        try:  # ... then the worker records its state
            if isinstance(source, AsyncSessionManager):
                async with source.get_transaction() as session:
                    await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
            else:
                async with source.transaction() as tx:
                    await tx.session.execute(text(f"INSERT INTO {table} VALUES (1)"))
            log.append("worker wrote")
        except Exception as exc:
            log.append(f"worker failed: {type(exc).__name__}")

    return worker


def _record(container: Any, log: list[str]) -> None:
    manager: AsyncSessionManager = container.database.session_manager()
    manager.bus.subscribe(TransactionEnded, lambda e: log.append(f"transaction {e.outcome}"))
    manager.bus.subscribe(ManagerClosing, lambda e: log.append("manager closing"))


@pytest.mark.asyncio
async def test_a_resource_taking_the_manager_directly_stops_before_the_manager(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    log: list[str] = []
    container: Any = App(config=config)
    container.worker = providers.Resource(_worker(table, log), container.database.session_manager)
    await container.init_resources()
    _record(container, log)
    await container.shutdown_resources()  # dependency-injector's own, direct link
    assert log == ["transaction commit", "worker wrote", "manager closing"]
    assert await committed() == [1]


@pytest.mark.asyncio
async def test_a_resource_using_the_uow_stops_before_the_manager_with_fkit_shutdown_resources(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    log: list[str] = []
    container: Any = App(config=config)
    container.worker = providers.Resource(_worker(table, log), container.database.uow)
    await container.init_resources()
    _record(container, log)
    manager = container.database.session_manager()
    await shutdown_resources(container)
    assert log == ["transaction commit", "worker wrote", "manager closing"]
    assert await committed() == [1]
    assert manager.state == "closed"


@pytest.mark.asyncio
async def test_work_in_flight_when_the_manager_closes_is_drained_not_cut(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    # Even with dependency-injector's own shutdown (same round, concurrently), a
    # transaction already running finishes: close() waits for in-flight work.
    log: list[str] = []

    async def holder(uow: AsyncSQLAlchemyUnitOfWork[Any]) -> AsyncIterator[str]:
        async with uow.transaction() as tx:
            await tx.session.execute(text(f"INSERT INTO {table} VALUES (2)"))
            yield "holder"
            await asyncio.sleep(0.01)
            await tx.session.execute(text(f"INSERT INTO {table} VALUES (3)"))

    container: Any = App(config=config)
    container.holder = providers.Resource(holder, container.database.uow)
    await container.init_resources()
    _record(container, log)
    manager = container.database.session_manager()
    closed: list[ManagerClosed] = []
    manager.bus.subscribe(ManagerClosed, closed.append)
    await container.shutdown_resources()
    assert "transaction commit" in log
    assert [event.cancelled for event in closed] == [0]  # waited for it, cancelled nothing
    assert await committed() == [2, 3]
