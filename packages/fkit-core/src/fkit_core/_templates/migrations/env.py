"""Alembic environment written by ``fkit migrations init``: async, wired to fkit's settings.

The database is the one fkit's settings name, so this file needs no editing to connect:

* run through ``fkit_core.run_migrations`` (or ``fkit migrations upgrade``), it is the
  session manager's primary database, handed over in ``config.attributes``;
* run with the ``alembic`` command, it comes from the ``FKIT_DB_*`` environment variables:
  ``FKIT_DB_URL=postgresql+asyncpg://app:secret@db/app alembic upgrade head``.

The connection uses the same server settings as the application (``search_path``,
timeouts, ``application_name``): a ``query.statement_timeout`` applies to migrations too.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import TYPE_CHECKING

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from fkit_core.settings import BasePostgresConfig

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection

config = context.config

# ---------------------------------------------------------------------------------------
# EDIT ME: point this at your models' metadata for `alembic revision --autogenerate`, e.g.
#     from myapp.models import Base
#     target_metadata = Base.metadata
target_metadata: MetaData | None = None
# ---------------------------------------------------------------------------------------

# Instances started together with migrations.run_on_start must not run the same revisions
# twice: each run takes this transaction-level advisory lock first, so the others wait and
# then find the database up to date. ("fkit_mig" in ASCII.)
MIGRATION_LOCK_KEY = 0x666B69745F6D6967

# Inside an application (run_migrations) the application owns logging: leave it alone.
if config.config_file_name is not None and "fkit_config" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def fkit_settings() -> BasePostgresConfig:
    """The settings of the database to migrate: the caller's, else the environment's."""
    settings = config.attributes.get("fkit_config")
    if isinstance(settings, BasePostgresConfig):
        return settings
    url = config.attributes.get("fkit_url")
    if url is not None:
        return BasePostgresConfig(url=url)
    return BasePostgresConfig()


def run_migrations_offline() -> None:
    """Write the migrations' SQL to standard output (``alembic upgrade head --sql``)."""
    context.configure(
        url=fkit_settings().primary_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations in one transaction (PostgreSQL's DDL is transactional)."""
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_async_migrations() -> None:
    """Connect with fkit's settings and run the migrations on an async connection."""
    settings = fkit_settings()
    # One run needs one connection (NullPool). The connect arguments carry fkit's server
    # settings and, behind pgbouncer, its prepared-statement settings.
    engine = create_async_engine(
        settings.primary_url(),
        poolclass=pool.NullPool,
        connect_args=settings.engine_kwargs()["connect_args"],
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Run the migrations against the database."""
    # run_migrations calls Alembic in a worker thread: this event loop is that thread's
    # own, never the application's.
    asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
