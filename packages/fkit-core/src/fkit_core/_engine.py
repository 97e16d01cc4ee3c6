"""Engine creation from a config, including pgbouncer's per-transaction server settings.

The session manager calls :func:`build_engine` once per engine (primary and each
replica) with options it got from ``config.engine_kwargs()`` and may have adjusted.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fkit_core.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

    from fkit_core.settings import BasePostgresConfig

__all__ = [
    "READ_UNCOMMITTED_OPTION",
    "begins_read_uncommitted",
    "build_engine",
    "transaction_settings_for",
]

READ_UNCOMMITTED_OPTION = "fkit_read_uncommitted"
"""Execution option asking an engine with per-transaction settings to begin READ UNCOMMITTED.

SQLAlchemy's asyncpg dialect refuses that level as an ``isolation_level`` option. Where
pgbouncer's settings are sent by a ``begin`` listener, a listener registered before it
issues ``SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED`` as the transaction's first
statement, ahead of the settings. Every other engine gets that statement from the
transaction runner right after BEGIN.
"""

# Only engines that need it carry a `begin` listener: any engine-level listener makes
# SQLAlchemy join dispatchers on every connection and check them on every execute, which
# costs the plain transaction path a measurable share of its CPU time.
_READ_UNCOMMITTED_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def begins_read_uncommitted(engine: Engine) -> bool:
    """Whether ``engine`` honours :data:`READ_UNCOMMITTED_OPTION` (its ``begin`` listener)."""
    return engine in _READ_UNCOMMITTED_ENGINES


def _psycopg_back_to_server_defaults(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy resets psycopg's read_only/deferrable to False, not to "unset", so the
    # next transaction would say BEGIN READ WRITE, which a hot standby refuses. Unset
    # (None) means plain BEGIN, as before any read-only transaction ran.
    if dbapi_connection is None:
        return
    if getattr(dbapi_connection, "read_only", None) is False:
        dbapi_connection.set_read_only(None)
    if getattr(dbapi_connection, "deferrable", None) is False:
        dbapi_connection.set_deferrable(None)


def _begin_read_uncommitted(connection: Connection) -> None:
    if connection.get_execution_options().get(READ_UNCOMMITTED_OPTION):
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")


def transaction_settings_for(config: BasePostgresConfig) -> dict[str, str]:
    """The server settings applied per transaction instead of at connection startup.

    Args:
        config: A validated configuration.

    Returns:
        Empty unless ``config.pgbouncer`` is on; then every server setting pgbouncer
        would refuse in the startup packet (all but ``application_name``).
    """
    if not config.pgbouncer:
        return {}
    # Imported here: the transaction runner imports this module, and `import fkit_core`
    # must not pay for pydantic-settings until settings are actually built.
    from fkit_core.settings._kwargs import startup_settings_for
    from fkit_core.settings._server import server_settings_for

    startup = startup_settings_for(config)
    return {
        name: value for name, value in server_settings_for(config).items() if name not in startup
    }


def _install_transaction_settings(engine: AsyncEngine, settings: dict[str, str]) -> None:
    # One round trip per transaction for all settings; names and values are bound
    # parameters, never pasted into the SQL.
    calls = ", ".join(f"set_config(:name_{i}, :value_{i}, true)" for i in range(len(settings)))
    statement = text(f"SELECT {calls}")
    params: dict[str, str] = {}
    for i, (name, value) in enumerate(settings.items()):
        params[f"name_{i}"] = name
        params[f"value_{i}"] = value

    def apply_settings(connection: Connection) -> None:
        # The begin event fires before the driver opens the transaction; the first
        # statement opens it, so set_config(..., true) lasts until COMMIT/ROLLBACK.
        connection.execute(statement, params)

    event.listen(engine.sync_engine, "begin", apply_settings)


def build_engine(config: BasePostgresConfig, url: URL, options: dict[str, Any]) -> AsyncEngine:
    """Create an async engine for one server of the config.

    In pgbouncer mode, server settings other than ``application_name`` cannot travel in
    the startup packet, so a ``begin`` listener applies them with
    ``SELECT set_config(name, value, true), ...`` at the start of every transaction.
    They then hold only inside transactions (not on ``AUTOCOMMIT`` connections), and
    isolation level and read-only mode must be chosen through SQLAlchemy's execution
    options, not a ``SET TRANSACTION`` statement, which must come before any query.

    Args:
        config: The validated configuration the engine belongs to.
        url: The server's URL, usually ``config.primary_url()`` or a replica's.
        options: Keyword arguments for ``create_async_engine``, normally
            ``config.engine_kwargs()`` (possibly adjusted by plugins).

    Returns:
        The new engine; the caller disposes it.

    Raises:
        MissingDependencyError: The URL's driver is not installed.
        ConfigurationError: SQLAlchemy rejected an option.
    """
    try:
        engine = create_async_engine(url, **options)
    except ImportError as exc:
        driver = url.get_driver_name()
        raise MissingDependencyError(
            f"the {driver} driver ({exc.name or driver})", f"fkit-core[{driver}]"
        ) from exc
    except (ArgumentError, TypeError) as exc:
        # SQLAlchemy names the offending option; these messages do not carry the URL.
        raise ConfigurationError(f"create_async_engine rejected the engine options: {exc}") from exc
    if url.get_driver_name() == "psycopg":
        event.listen(engine.sync_engine.pool, "checkin", _psycopg_back_to_server_defaults)
    settings = transaction_settings_for(config)
    if settings:
        # Registered first: listeners run in registration order, and SET TRANSACTION
        # must precede every other statement of the transaction.
        event.listen(engine.sync_engine, "begin", _begin_read_uncommitted)
        _READ_UNCOMMITTED_ENGINES.add(engine.sync_engine)
        _install_transaction_settings(engine, settings)
    return engine
