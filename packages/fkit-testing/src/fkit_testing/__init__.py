"""fkit-testing: a real PostgreSQL for every test.

The pytest plugin (``fkit_testing.plugin``, loaded automatically) provides the
``fkit_database_url``, ``fkit_driver`` and ``fkit_manager`` fixtures. This package exports
the throwaway-server launcher they use.

Names are imported on first access: the plugin module is imported by every pytest run
and must not pull in fkit-core or SQLAlchemy before a fixture needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fkit_testing._bindir import find_postgres_bindir
    from fkit_testing._errors import DatabaseUnavailableError, LauncherError
    from fkit_testing._launcher import PostgresServer, launch_postgres

__all__ = [
    "DatabaseUnavailableError",
    "LauncherError",
    "PostgresServer",
    "find_postgres_bindir",
    "launch_postgres",
]

_HOMES = {
    "DatabaseUnavailableError": "fkit_testing._errors",
    "LauncherError": "fkit_testing._errors",
    "PostgresServer": "fkit_testing._launcher",
    "find_postgres_bindir": "fkit_testing._bindir",
    "launch_postgres": "fkit_testing._launcher",
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
