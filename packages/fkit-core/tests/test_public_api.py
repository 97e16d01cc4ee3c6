"""The public API is pinned: a change to it is a deliberate change to this list."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import fkit_core
from fkit_core import errors, events, settings

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_pinned_and_sorted() -> None:
    assert fkit_core.__all__ == [
        "AsyncSQLAlchemyUnitOfWork",
        "AsyncSQLAlchemyUowTransaction",
        "AsyncSessionManager",
        "BasePostgresConfig",
        "ConfigurationError",
        "ConnectionSettings",
        "DatabaseError",
        "DiscoveredPlugin",
        "EngineOptionsHook",
        "EventBus",
        "FkitError",
        "HealthReport",
        "IsolationLevel",
        "IsolationLevelLike",
        "ManagedTransaction",
        "ManagerClosedError",
        "MigrationSettings",
        "MissingDependencyError",
        "Plugin",
        "PluginLoadWarning",
        "PoolSettings",
        "PoolTimeoutError",
        "QuerySettings",
        "RetryConfig",
        "ScopeHook",
        "SessionManager",
        "TransactionScope",
        "__version__",
        "create_async_session_manager",
        "create_db_context",
        "create_db_dependency",
        "discover_plugins",
        "downgrade_migrations",
        "get_transaction",
        "parse_isolation_level",
        "retry_async_connection",
        "run_migrations",
        "savepoint",
        "sqlstate_of",
        "translate_error",
        "wait_for_row_change",
    ]
    for module in (fkit_core, errors, events, settings):
        assert module.__all__ == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_the_plugin_author_module_is_pinned() -> None:
    import fkit_core.extending as extending

    assert extending.__all__ == [
        "WorkOwner",
        "engine_name_of",
        "manager_of",
        "owner_of",
        "raise_translated",
    ]
    for name in extending.__all__:
        assert getattr(extending, name).__doc__, name


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert fkit_core.__version__ == pyproject["project"]["version"]


def test_every_error_derives_from_fkit_error() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.FkitError), name
    assert issubclass(errors.PoolTimeoutError, TimeoutError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.ConfigurationError, ValueError)


def test_missing_dependency_error_names_the_distribution() -> None:
    error = errors.MissingDependencyError("the psycopg driver", "fkit-core[psycopg]")
    assert "pip install fkit-core[psycopg]" in str(error)


def test_importing_does_no_work() -> None:
    """No plugin scan, no engine, no optional import at import time."""
    code = (
        "import sys, fkit_core, fkit_core.events, fkit_core.errors\n"
        "from fkit_core._plugins import discover_plugins\n"
        "assert discover_plugins.cache_info().currsize == 0\n"
        "heavy = [m for m in ('asyncpg', 'psycopg', 'fastapi', 'alembic', 'pydantic_settings') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import fkit_core.settings\n"
        "heavy = [m for m in ('asyncpg', 'psycopg', 'fastapi', 'alembic') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
