"""fkit-testing: a real PostgreSQL for every test, isolated tests, and fakes with a contract.

The pytest plugin (``fkit_testing.plugin``, loaded automatically) provides the fixtures:
``fkit_database_url``, ``fkit_driver``, ``fkit_schema``, ``fkit_worker_database``,
``fkit_manager``, ``fkit_session``, ``fkit_uow``, ``captured_events``,
``metrics_registry``, ``span_exporter``, ``fkit_replica_pair`` and ``fkit_pgbouncer_url``.
This package exports the launchers they use (throwaway PostgreSQL servers, streaming
replicas, pgbouncer), in-memory fakes (``InMemoryUnitOfWork``, ``InMemoryRepository``,
``FakeAdvisoryLocks``, ``RecordingEventBus``) and the contract suites that prove a fake
behaves like the real thing.

Names are imported on first access: the plugin module is imported by every pytest run
and must not pull in fkit-core or SQLAlchemy before a fixture needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fkit_testing._bindir import find_postgres_bindir
    from fkit_testing._bouncer_setup import find_pgbouncer
    from fkit_testing._capture import CapturedEvents
    from fkit_testing._contracts import RepositoryContract, UnitOfWorkContract
    from fkit_testing._errors import DatabaseUnavailableError, LauncherError, ReplayTimeoutError
    from fkit_testing._fake_bus import RecordingEventBus
    from fkit_testing._fake_locks import FakeAdvisoryLocks, LockRecord
    from fkit_testing._fake_repository import InMemoryRepository, Repository
    from fkit_testing._fake_uow import InMemoryTransaction, InMemoryUnitOfWork
    from fkit_testing._fixtures import UnitOfWorkFactory
    from fkit_testing._launcher import PostgresServer, launch_postgres
    from fkit_testing._pgbouncer import PgBouncer, launch_pgbouncer
    from fkit_testing._replica import (
        PostgresReplica,
        ReplicaPair,
        launch_replica,
        launch_replica_pair,
    )
    from fkit_testing._schema import AlembicSchema
    from fkit_testing._workerdb import WorkerDatabase

__all__ = [
    "AlembicSchema",
    "CapturedEvents",
    "DatabaseUnavailableError",
    "FakeAdvisoryLocks",
    "InMemoryRepository",
    "InMemoryTransaction",
    "InMemoryUnitOfWork",
    "LauncherError",
    "LockRecord",
    "PgBouncer",
    "PostgresReplica",
    "PostgresServer",
    "RecordingEventBus",
    "ReplayTimeoutError",
    "ReplicaPair",
    "Repository",
    "RepositoryContract",
    "UnitOfWorkContract",
    "UnitOfWorkFactory",
    "WorkerDatabase",
    "find_pgbouncer",
    "find_postgres_bindir",
    "launch_pgbouncer",
    "launch_postgres",
    "launch_replica",
    "launch_replica_pair",
]

_HOMES = {
    "AlembicSchema": "fkit_testing._schema",
    "CapturedEvents": "fkit_testing._capture",
    "DatabaseUnavailableError": "fkit_testing._errors",
    "FakeAdvisoryLocks": "fkit_testing._fake_locks",
    "InMemoryRepository": "fkit_testing._fake_repository",
    "InMemoryTransaction": "fkit_testing._fake_uow",
    "InMemoryUnitOfWork": "fkit_testing._fake_uow",
    "LauncherError": "fkit_testing._errors",
    "LockRecord": "fkit_testing._fake_locks",
    "PgBouncer": "fkit_testing._pgbouncer",
    "PostgresReplica": "fkit_testing._replica",
    "PostgresServer": "fkit_testing._launcher",
    "RecordingEventBus": "fkit_testing._fake_bus",
    "ReplayTimeoutError": "fkit_testing._errors",
    "ReplicaPair": "fkit_testing._replica",
    "Repository": "fkit_testing._fake_repository",
    "RepositoryContract": "fkit_testing._contracts",
    "UnitOfWorkContract": "fkit_testing._contracts",
    "UnitOfWorkFactory": "fkit_testing._fixtures",
    "WorkerDatabase": "fkit_testing._workerdb",
    "find_pgbouncer": "fkit_testing._bouncer_setup",
    "find_postgres_bindir": "fkit_testing._bindir",
    "launch_pgbouncer": "fkit_testing._pgbouncer",
    "launch_postgres": "fkit_testing._launcher",
    "launch_replica": "fkit_testing._replica",
    "launch_replica_pair": "fkit_testing._replica",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        msg = f"module 'fkit_testing' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
