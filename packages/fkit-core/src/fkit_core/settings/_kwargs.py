"""The ``create_async_engine`` arguments a config implies, correct for each driver."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from fkit_core.settings._pool import pool_engine_kwargs
from fkit_core.settings._server import STARTUP_ONLY_SETTINGS, libpq_options, server_settings_for

if TYPE_CHECKING:
    from fkit_core.settings._config import BasePostgresConfig

__all__ = ["engine_kwargs_for", "startup_settings_for"]


def _unique_statement_name() -> str:
    # Behind pgbouncer consecutive transactions may land on different server
    # connections; asyncpg's default counter-based names would then collide.
    return f"__asyncpg_{uuid4()}__"


def startup_settings_for(config: BasePostgresConfig) -> dict[str, str]:
    """The server settings that travel in the connection's startup packet.

    Args:
        config: A validated configuration.

    Returns:
        All server settings; in pgbouncer mode only those pgbouncer accepts at
        startup (``application_name``), the rest being applied per transaction.
    """
    settings = server_settings_for(config)
    if config.pgbouncer:
        return {name: value for name, value in settings.items() if name in STARTUP_ONLY_SETTINGS}
    return settings


def _asyncpg_connect_args(config: BasePostgresConfig, startup: dict[str, str]) -> dict[str, Any]:
    connect_args: dict[str, Any] = {}
    if config.pool.connect_timeout is not None:
        connect_args["timeout"] = config.pool.connect_timeout
    if startup:
        connect_args["server_settings"] = startup
    query = config.query
    if config.pgbouncer:
        # Transaction pooling cannot keep named prepared statements alive across
        # transactions: turn off both caches and make every name unique.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
        return connect_args
    if query.statement_cache_size is not None:
        connect_args["statement_cache_size"] = query.statement_cache_size
    if query.prepared_statement_cache_size is not None:
        connect_args["prepared_statement_cache_size"] = query.prepared_statement_cache_size
    return connect_args


def _psycopg_connect_args(config: BasePostgresConfig, startup: dict[str, str]) -> dict[str, Any]:
    connect_args: dict[str, Any] = {}
    if config.pool.connect_timeout is not None:
        # libpq counts whole seconds (and treats 1 as 2): round up, never down to none.
        connect_args["connect_timeout"] = max(2, math.ceil(config.pool.connect_timeout))
    options = dict(startup)
    application_name = options.pop("application_name", None)
    if application_name is not None:
        # A libpq connection parameter of its own, so it needs no -c switch.
        connect_args["application_name"] = application_name
    if options:
        connect_args["options"] = libpq_options(options)
    query = config.query
    # Validation allows only 0 for these with psycopg, meaning "no prepared statements".
    if config.pgbouncer or 0 in (query.statement_cache_size, query.prepared_statement_cache_size):
        connect_args["prepare_threshold"] = None
    return connect_args


def engine_kwargs_for(config: BasePostgresConfig) -> dict[str, Any]:
    """Build the keyword arguments for ``create_async_engine`` from a config.

    Args:
        config: A validated configuration.

    Returns:
        A fresh dict: pool arguments, ``echo`` and the driver's ``connect_args``.
    """
    kwargs = pool_engine_kwargs(config.pool)
    kwargs["echo"] = config.echo
    startup = startup_settings_for(config)
    if config.connection.driver == "asyncpg":
        kwargs["connect_args"] = _asyncpg_connect_args(config, startup)
    else:
        kwargs["connect_args"] = _psycopg_connect_args(config, startup)
    return kwargs
