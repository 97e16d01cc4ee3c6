"""fkit-testing: a real PostgreSQL for every test.

The pytest plugin (``fkit_testing.plugin``, loaded automatically) provides the
``fkit_database_url``, ``fkit_driver``, ``fkit_manager``, ``fkit_replica_pair`` and
``fkit_pgbouncer_url`` fixtures. This package exports the launchers they use: throwaway
PostgreSQL servers, streaming replicas of them, and pgbouncer.

Names are imported on first access: the plugin module is imported by every pytest run
and must not pull in fkit-core or SQLAlchemy before a fixture needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fkit_testing._bindir import find_postgres_bindir
    from fkit_testing._bouncer_setup import find_pgbouncer
    from fkit_testing._errors import DatabaseUnavailableError, LauncherError, ReplayTimeoutError
    from fkit_testing._launcher import PostgresServer, launch_postgres
    from fkit_testing._pgbouncer import PgBouncer, launch_pgbouncer
    from fkit_testing._replica import (
        PostgresReplica,
        ReplicaPair,
        launch_replica,
        launch_replica_pair,
    )

__all__ = [
    "DatabaseUnavailableError",
    "LauncherError",
    "PgBouncer",
    "PostgresReplica",
    "PostgresServer",
    "ReplayTimeoutError",
    "ReplicaPair",
    "find_pgbouncer",
    "find_postgres_bindir",
    "launch_pgbouncer",
    "launch_postgres",
    "launch_replica",
    "launch_replica_pair",
]

_HOMES = {
    "DatabaseUnavailableError": "fkit_testing._errors",
    "LauncherError": "fkit_testing._errors",
    "PgBouncer": "fkit_testing._pgbouncer",
    "PostgresReplica": "fkit_testing._replica",
    "PostgresServer": "fkit_testing._launcher",
    "ReplayTimeoutError": "fkit_testing._errors",
    "ReplicaPair": "fkit_testing._replica",
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
