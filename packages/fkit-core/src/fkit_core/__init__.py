"""fkit-core: engine and session life cycle, transactions, an event bus and plugins.

Public names are re-exported here; the implementation lives in private modules.
``fkit_core.settings``, ``fkit_core.events`` and ``fkit_core.errors`` are public modules.
"""

from typing import TYPE_CHECKING, Any

from fkit_core._bus import EngineOptionsHook, EventBus, ScopeHook, TransactionScope
from fkit_core._health import HealthReport
from fkit_core._isolation import IsolationLevel, IsolationLevelLike, parse_isolation_level
from fkit_core._manager import AsyncSessionManager, SessionManager, create_async_session_manager
from fkit_core._migrations import downgrade_migrations, run_migrations
from fkit_core._nested import get_transaction, savepoint
from fkit_core._plugins import DiscoveredPlugin, Plugin, PluginLoadWarning, discover_plugins
from fkit_core._retry import RetryConfig, retry_async_connection
from fkit_core._rowwait import wait_for_row_change
from fkit_core._transaction import ManagedTransaction
from fkit_core._translate import sqlstate_of, translate_error
from fkit_core._uow import AsyncSQLAlchemyUnitOfWork, AsyncSQLAlchemyUowTransaction
from fkit_core._version import VERSION as __version__
from fkit_core._web import create_db_context, create_db_dependency
from fkit_core.errors import (
    ConfigurationError,
    DatabaseError,
    FkitError,
    ManagerClosedError,
    MissingDependencyError,
    PoolTimeoutError,
)

if TYPE_CHECKING:
    from fkit_core.settings import (
        BasePostgresConfig,
        ConnectionSettings,
        MigrationSettings,
        PoolSettings,
        QuerySettings,
    )

__all__ = [
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

# The settings models import pydantic-settings, which costs as much again as SQLAlchemy;
# they load on first use so that `import fkit_core` stays cheap.
_LAZY = frozenset(
    {
        "BasePostgresConfig",
        "ConnectionSettings",
        "MigrationSettings",
        "PoolSettings",
        "QuerySettings",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from fkit_core import settings

        value = getattr(settings, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fkit_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
