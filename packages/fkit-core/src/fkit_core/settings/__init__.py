"""Database settings: models built from arguments or ``FKIT_DB_*`` environment variables.

Example::

    from fkit_core.settings import BasePostgresConfig, PoolSettings, QuerySettings

    config = BasePostgresConfig(
        url="postgresql+asyncpg://app:secret@db:5432/app",
        pool=PoolSettings(size=20, max_overflow=0),
        query=QuerySettings(statement_timeout=5, application_name="billing"),
        pgbouncer=True,
        jit="off",
    )

Every validation failure raises :class:`fkit_core.errors.ConfigurationError`, which
names each bad field by its dotted path (``pool.size``) and never shows input values.
"""

from __future__ import annotations

from fkit_core.settings._config import BasePostgresConfig
from fkit_core.settings._connection import ConnectionSettings
from fkit_core.settings._migrations import MigrationSettings
from fkit_core.settings._pool import ASYNC_POOL_CLASSES, PoolSettings
from fkit_core.settings._query import QuerySettings
from fkit_core.settings._url import Driver

__all__ = [
    "ASYNC_POOL_CLASSES",
    "BasePostgresConfig",
    "ConnectionSettings",
    "Driver",
    "MigrationSettings",
    "PoolSettings",
    "QuerySettings",
]
