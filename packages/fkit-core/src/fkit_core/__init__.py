"""fkit-core: engine and session life cycle, transactions, an event bus and plugins.

Public names are re-exported here; the implementation lives in private modules.
``fkit_core.settings``, ``fkit_core.events`` and ``fkit_core.errors`` are public modules.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from fkit_core.settings import (
        BasePostgresConfig,
        ConnectionSettings,
        PoolSettings,
        QuerySettings,
    )

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

# The settings models import pydantic-settings, which costs as much again as SQLAlchemy;
# they load on first use so that `import fkit_core` stays cheap.
_LAZY = frozenset({"BasePostgresConfig", "ConnectionSettings", "PoolSettings", "QuerySettings"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from fkit_core import settings

        value = getattr(settings, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fkit_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
