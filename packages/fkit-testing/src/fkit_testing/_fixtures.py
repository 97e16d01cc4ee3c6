"""The fixtures that hand tests a database, a manager, sessions and Units of Work.

Imported by the plugin module, so nothing heavy is imported at module level: fkit-core
and SQLAlchemy load when a fixture runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import pytest
import pytest_asyncio

from fkit_testing._capture import CAPTURE_FIXTURES, CAPTURE_KEY

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, Plugin
    from fkit_core.settings import BasePostgresConfig
    from fkit_testing._isolation import IsolationMode
    from fkit_testing._replica import ReplicaPair
    from fkit_testing._run import RunIdentity
    from fkit_testing._workerdb import WorkerDatabase, WorkerDatabases

__all__ = [
    "IDENTITY_KEY",
    "UnitOfWorkFactory",
    "fkit_isolation",
    "fkit_manager",
    "fkit_manager_config",
    "fkit_manager_plugins",
    "fkit_replica_pair_database",
    "fkit_schema",
    "fkit_session",
    "fkit_uow",
    "fkit_worker_database",
]

IDENTITY_KEY: pytest.StashKey[RunIdentity] = pytest.StashKey()
_CLOSE_TIMEOUT = 10.0

U = TypeVar("U")


class UnitOfWorkFactory(Protocol):
    """The type of the ``fkit_uow`` fixture: ``fkit_uow(MyUnitOfWork, *args, **kwargs)``."""

    @overload
    def __call__(self) -> AsyncSQLAlchemyUnitOfWork[Any]: ...

    @overload
    def __call__(self, uow_class: type[U], /, *args: Any, **kwargs: Any) -> U: ...


@pytest.fixture(scope="session")
def fkit_schema(request: pytest.FixtureRequest) -> object:
    """The schema each test database starts with; override it to build yours.

    Default: what the ini options say. ``fkit_schema = "myapp.models:Base"`` names a
    ``MetaData`` or a declarative base (``create_all``), or a callable taking a connection;
    ``fkit_alembic_ini = "alembic.ini"`` (and ``fkit_alembic_revision``, default
    ``head``) runs Alembic. Neither: an empty database. Overridden, it may return any of
    these, an :class:`~fkit_testing.AlembicSchema`, or a list of them.

    Raises:
        pytest.UsageError: The ini options are inconsistent or name nothing importable.
    """
    from fkit_testing._schema import schema_from_ini

    config = request.config
    try:
        return schema_from_ini(
            str(config.getini("fkit_schema") or ""),
            str(config.getini("fkit_alembic_ini") or ""),
            str(config.getini("fkit_alembic_revision") or ""),
            config.rootpath,
        )
    except ValueError as exc:
        raise pytest.UsageError(f"fkit-testing: {exc}") from exc


@pytest.fixture(scope="session")
def _fkit_databases(
    request: pytest.FixtureRequest, fkit_database_url: str, fkit_driver: str
) -> Iterator[WorkerDatabases]:
    """This worker's databases on the ``fkit_database_url`` server, dropped at the end."""
    from fkit_testing._workerdb import WorkerDatabases

    databases = WorkerDatabases(fkit_database_url, fkit_driver, request.config.stash[IDENTITY_KEY])
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def _fkit_replica_pair_databases(
    request: pytest.FixtureRequest, fkit_replica_pair: ReplicaPair, fkit_driver: str
) -> Iterator[WorkerDatabases]:
    """This worker's databases on ``fkit_replica_pair``'s primary, dropped before the pair."""
    from fkit_testing._workerdb import WorkerDatabases

    identity = request.config.stash[IDENTITY_KEY]
    databases = WorkerDatabases(fkit_replica_pair.primary_url, fkit_driver, identity)
    yield databases
    databases.close()


@pytest.fixture
def fkit_worker_database(_fkit_databases: WorkerDatabases, fkit_schema: object) -> WorkerDatabase:
    """This worker's own database on the ``fkit_database_url`` server, with the schema.

    Cloned (``CREATE DATABASE ... TEMPLATE``) from a template built once per run with
    ``fkit_schema`` (the first time a test needs it); dropped at the end of the session,
    and by a reaper process when the session is killed. The lookup is cheap: the same
    database serves every test that sees the same schema.
    """
    return _fkit_databases.get(fkit_schema)


@pytest.fixture
def fkit_replica_pair_database(
    _fkit_replica_pair_databases: WorkerDatabases,
    fkit_replica_pair: ReplicaPair,
    fkit_schema: object,
) -> WorkerDatabase:
    """This worker's database on ``fkit_replica_pair``'s primary, replayed on its replica."""
    database = _fkit_replica_pair_databases.get(fkit_schema)
    fkit_replica_pair.wait_for_replay()
    return database


@pytest.fixture
def fkit_manager_config(request: pytest.FixtureRequest, fkit_driver: str) -> BasePostgresConfig:
    """The settings ``fkit_manager`` is built from; override it to change them.

    The worker's database by default; through ``fkit_pgbouncer`` with
    ``@pytest.mark.fkit_pgbouncer``; on ``fkit_replica_pair`` (primary and replica) with
    ``@pytest.mark.fkit_replica``.
    """
    from fkit_core.settings import BasePostgresConfig
    from fkit_testing._urls import with_driver

    node = request.node
    if node.get_closest_marker("fkit_replica") is not None:
        pair: ReplicaPair = request.getfixturevalue("fkit_replica_pair")
        database: WorkerDatabase = request.getfixturevalue("fkit_replica_pair_database")
        replica_url = with_driver(pair.replica.database_url(database.name), fkit_driver)
        return BasePostgresConfig(
            url=database.sqlalchemy_url(fkit_driver), replica_urls=[replica_url]
        )
    if node.get_closest_marker("fkit_pgbouncer") is not None:
        url = with_driver(request.getfixturevalue("fkit_pgbouncer_url"), fkit_driver)
        return BasePostgresConfig(url=url, pgbouncer=True)
    database = request.getfixturevalue("fkit_worker_database")
    return BasePostgresConfig(url=database.sqlalchemy_url(fkit_driver))


@pytest.fixture
def fkit_manager_plugins(request: pytest.FixtureRequest) -> list[Plugin]:
    """The plugins ``fkit_manager`` gets: ``@pytest.mark.fkit_plugins(...)`` and capture ones.

    ``captured_events``, ``metrics_registry`` and ``span_exporter`` add theirs when the
    test asks for them. Plugin autoload is off, so installed plugins never sneak in.
    """
    marker = request.node.get_closest_marker("fkit_plugins")
    plugins: list[Plugin] = list(marker.args) if marker is not None else []
    for name in CAPTURE_FIXTURES:
        if name in request.fixturenames:
            request.getfixturevalue(name)
            plugins.append(request.node.stash[CAPTURE_KEY][name])
    return plugins


@pytest.fixture
def fkit_isolation(request: pytest.FixtureRequest) -> IsolationMode:
    """How ``fkit_manager`` isolates the test: ``"rollback"`` or ``"truncate"``.

    ``"truncate"`` with ``@pytest.mark.fkit_truncate`` or ``@pytest.mark.fkit_replica``;
    override the fixture to change the default for a module or a whole suite.
    """
    node = request.node
    if node.get_closest_marker("fkit_truncate") or node.get_closest_marker("fkit_replica"):
        return "truncate"
    return "rollback"


@pytest_asyncio.fixture
async def fkit_manager(
    request: pytest.FixtureRequest,
    fkit_manager_config: BasePostgresConfig,
    fkit_manager_plugins: list[Plugin],
    fkit_isolation: IsolationMode,
) -> AsyncIterator[AsyncSessionManager]:
    """A started ``AsyncSessionManager`` on this worker's database, isolated per test.

    Rollback isolation (the default) binds all its sessions to one connection whose
    transaction is rolled back after the test: what the test and the code under test
    commit is gone afterwards. ``@pytest.mark.fkit_truncate`` lets them commit for real
    and empties every table afterwards instead.
    """
    from fkit_core import AsyncSessionManager
    from fkit_testing._isolation import Isolation

    pair: ReplicaPair | None = None
    if request.node.get_closest_marker("fkit_replica") is not None:
        pair = request.getfixturevalue("fkit_replica_pair")
    manager = AsyncSessionManager(fkit_manager_config, plugins=fkit_manager_plugins, autoload=False)
    await manager.start()
    isolation = Isolation(manager, fkit_isolation)
    try:
        await isolation.begin()
        yield manager
    finally:
        try:
            await isolation.finish(_CLOSE_TIMEOUT)
        finally:
            if pair is not None:
                # The next test reads from the replica: it must not see this test's rows.
                pair.wait_for_replay()


@pytest_asyncio.fixture
async def fkit_session(fkit_manager: AsyncSessionManager) -> AsyncIterator[AsyncSession]:
    """A session of ``fkit_manager`` (inside the test's transaction), closed after the test."""
    async with fkit_manager.session_maker() as session:
        yield session


@pytest.fixture
def fkit_uow(fkit_manager: AsyncSessionManager) -> UnitOfWorkFactory:
    """Build Units of Work on ``fkit_manager``: ``fkit_uow(MyUnitOfWork)``.

    ``fkit_uow()`` is a plain ``AsyncSQLAlchemyUnitOfWork``; ``fkit_uow(cls, *args)``
    calls ``cls(fkit_manager.session_maker, *args, **kwargs)``, the constructor shape
    of ``AsyncSQLAlchemyUnitOfWork`` and its subclasses.
    """

    def make(uow_class: Any = None, /, *args: Any, **kwargs: Any) -> Any:
        from fkit_core import AsyncSQLAlchemyUnitOfWork

        cls = AsyncSQLAlchemyUnitOfWork if uow_class is None else uow_class
        return cls(fkit_manager.session_maker, *args, **kwargs)

    return make
