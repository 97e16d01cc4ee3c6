"""``DatabaseContainer``: the session manager as the one ``Resource``, and what derives from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, AsyncSQLAlchemyUowTransaction
from fkit_core.errors import ConfigurationError
from fkit_core.settings import BasePostgresConfig
from fkit_di._resource import AsyncShutdownMarker, ManagerResource, run_session_manager

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

__all__ = ["DatabaseContainer"]


def _engine_of(manager: AsyncSessionManager) -> AsyncEngine:
    return manager.engine


def _session_maker_of(manager: AsyncSessionManager) -> async_sessionmaker[AsyncSession]:
    return manager.session_maker


def _unit_of_work(
    uow_class: type[AsyncSQLAlchemyUnitOfWork[Any]],
    transaction_class: type[AsyncSQLAlchemyUowTransaction] | None,
    manager: AsyncSessionManager,
) -> AsyncSQLAlchemyUnitOfWork[Any]:
    if not (isinstance(uow_class, type) and issubclass(uow_class, AsyncSQLAlchemyUnitOfWork)):
        raise ConfigurationError(
            "DatabaseContainer.uow_class must be AsyncSQLAlchemyUnitOfWork or a subclass of "
            f"it, not {uow_class!r}"
        )
    if transaction_class is None:
        return uow_class(manager)
    return uow_class(manager, transaction_factory=transaction_class)


class DatabaseContainer(containers.DeclarativeContainer):
    """dependency-injector container for one database: the manager and what derives from it.

    ``session_manager`` is the only ``Resource`` that holds anything (``async_shutdown``,
    which holds nothing, keeps ``shutdown_resources()`` awaitable): ``init_resources()``
    builds and starts the manager, ``shutdown_resources()`` closes it (draining in-flight
    transactions, then disposing the engines). ``engine``, ``session_maker`` and ``uow``
    are derived from it by ``Callable`` and ``Factory`` providers and hold nothing to
    dispose, so no shutdown order among several resources can dispose an engine under
    a live session. After ``init_resources()`` every provider returns a plain object.

    Override these when composing it (``providers.Container(DatabaseContainer, ...)``):

    Attributes:
        postgres_config: The settings: a ``BasePostgresConfig``, a URL string, or a
            mapping of its fields (a ``providers.Configuration`` section). Unset, the
            settings are read from the environment (``FKIT_DB_URL``...).
        metrics: A metrics plugin (``PrometheusMetricsContainer.postgres_metrics``) or None.
        plugins: More plugins for the manager.
        autoload: Whether the manager loads installed plugins (None: the environment decides).
        manager_name: The manager's name in events, logs and metric labels.
        close_timeout: Seconds shutdown waits for in-flight work before cancelling it.
        session_options: Extra ``async_sessionmaker`` arguments.
        uow_class: The Unit of Work class ``uow`` builds, called with the manager.
        transaction_class: When set, passed as ``transaction_factory`` to ``uow_class``.
        session_manager: The started :class:`~fkit_core.AsyncSessionManager` (a Resource;
            after ``init_resources()`` it returns the manager itself, not an awaitable).
        engine: Its primary ``AsyncEngine``.
        session_maker: Its primary ``async_sessionmaker``.
        uow: A Unit of Work over the manager (a Factory).
    """

    postgres_config: providers.Provider[Any] = providers.Dependency(
        default=providers.Factory(BasePostgresConfig)
    )
    metrics: providers.Provider[Any] = providers.Object(None)
    plugins: providers.Provider[Any] = providers.Object(())
    autoload: providers.Provider[Any] = providers.Object(None)
    manager_name: providers.Provider[Any] = providers.Object("default")
    close_timeout: providers.Provider[Any] = providers.Object(30.0)
    session_options: providers.Provider[Any] = providers.Object(None)
    uow_class: providers.Provider[Any] = providers.Object(AsyncSQLAlchemyUnitOfWork)
    transaction_class: providers.Provider[Any] = providers.Object(None)

    # Holds nothing: it makes dependency-injector's shutdown_resources() await the
    # manager's close (see fkit_di._resource).
    async_shutdown = AsyncShutdownMarker()
    session_manager = ManagerResource(
        run_session_manager,
        postgres_config,
        metrics=metrics,
        plugins=plugins,
        autoload=autoload,
        name=manager_name,
        close_timeout=close_timeout,
        session_options=session_options,
    )
    engine = providers.Callable(_engine_of, session_manager)
    session_maker = providers.Callable(_session_maker_of, session_manager)
    uow = providers.Factory(_unit_of_work, uow_class, transaction_class, session_manager)
