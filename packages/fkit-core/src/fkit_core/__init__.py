"""fkit-core: engine and session life cycle, transactions, an event bus and plugins.

Public names are re-exported here; the implementation lives in private modules.
``fkit_core.settings``, ``fkit_core.events`` and ``fkit_core.errors`` are public modules.
"""

from fkit_core._bus import EngineOptionsHook, EventBus, ScopeHook, TransactionScope
from fkit_core._health import HealthReport
from fkit_core._isolation import IsolationLevel, IsolationLevelLike, parse_isolation_level
from fkit_core._manager import AsyncSessionManager, SessionManager, create_async_session_manager
from fkit_core._plugins import DiscoveredPlugin, Plugin, PluginLoadWarning, discover_plugins
from fkit_core._transaction import ManagedTransaction
from fkit_core._translate import sqlstate_of, translate_error
from fkit_core._version import VERSION as __version__
from fkit_core.errors import (
    ConfigurationError,
    DatabaseError,
    FkitError,
    ManagerClosedError,
    MissingDependencyError,
    PoolTimeoutError,
)
from fkit_core.settings import BasePostgresConfig, ConnectionSettings, PoolSettings, QuerySettings

__all__ = [
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
    "MissingDependencyError",
    "Plugin",
    "PluginLoadWarning",
    "PoolSettings",
    "PoolTimeoutError",
    "QuerySettings",
    "ScopeHook",
    "SessionManager",
    "TransactionScope",
    "__version__",
    "create_async_session_manager",
    "discover_plugins",
    "parse_isolation_level",
    "sqlstate_of",
    "translate_error",
]
