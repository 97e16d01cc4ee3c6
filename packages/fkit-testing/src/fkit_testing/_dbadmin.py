"""Creating, cloning, dropping and sweeping the per-worker test databases.

All changes to one run's databases happen under an advisory lock named after the run,
taken on the server's maintenance database: xdist workers, and the reapers of workers
that died, take turns, also across machines that share one server. The template is
built once per run (the first worker to need it builds it), each worker clones it with
``CREATE DATABASE ... TEMPLATE``, and whoever drops the run's last worker database drops
the template too.

Imported only by fixtures and by the database reaper, never at plugin start-up.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from fkit_testing._run import DB_PREFIX, RunIdentity, owner_alive, owner_record, parse_owner
from fkit_testing._schema import apply_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = [
    "admin_engine",
    "create_worker_database",
    "database_url",
    "drop_worker_database",
    "run_sync",
    "sweep_stale",
    "truncate_tables",
]

logger = logging.getLogger("fkit_testing.databases")

T = TypeVar("T")

_LOCK = text("SELECT pg_advisory_lock(hashtextextended(:name, 0))")
_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:name, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:name, 0))")
# Identifiers and literals are quoted by the server (format's %I and %L), never by hand.
_FORMAT = text("SELECT format(:template, VARIADIC CAST(:args AS text[]))")
_EXISTS = text("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = :name)")
_OURS = text(
    "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
    "WHERE left(datname, length(:prefix)) = :prefix ORDER BY datname"
)
_USER_TABLES = text(
    "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
    "WHERE schemaname <> 'information_schema' AND left(schemaname, 3) <> 'pg_' "
    "AND NOT (tablename = 'alembic_version') ORDER BY 1"
)


def run_sync(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work()`` to completion in a thread of its own, from sync code.

    Session fixtures are sync and may be set up while a test's event loop exists; a
    loop of their own, in another thread, never touches it.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="fkit-testing") as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


def database_url(server_url: str, database: str, driver: str | None = None) -> str:
    """``server_url`` with another database, and with ``+driver`` when given."""
    url = make_url(server_url).set(database=database)
    if driver is not None:
        url = url.set(drivername=f"postgresql+{driver}")
    return url.render_as_string(hide_password=False)


def admin_engine(server_url: str, driver: str) -> AsyncEngine:
    """An engine on the server's maintenance database, in autocommit (CREATE DATABASE)."""
    url = make_url(server_url).set(drivername=f"postgresql+{driver}")
    return create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


async def _ddl(conn: AsyncConnection, template: str, *args: str) -> None:
    statement = await conn.scalar(_FORMAT, {"template": template, "args": list(args)})
    await conn.exec_driver_sql(str(statement))


async def _exists(conn: AsyncConnection, name: str) -> bool:
    return bool(await conn.scalar(_EXISTS, {"name": name}))


async def _build_template(
    conn: AsyncConnection, identity: RunIdentity, schema: object, server_url: str, driver: str
) -> None:
    name = identity.template_name
    await _ddl(conn, "CREATE DATABASE %I", name)
    # Marked before the schema runs: a process killed half-way leaves a sweepable template.
    await _ddl(conn, "COMMENT ON DATABASE %I IS %L", name, owner_record(identity, "template"))
    try:
        await apply_schema(schema, database_url(server_url, name, driver))
    except BaseException:
        await _ddl(conn, "DROP DATABASE IF EXISTS %I WITH (FORCE)", name)
        raise


async def create_worker_database(
    server_url: str, driver: str, identity: RunIdentity, schema: object
) -> None:
    """Create this worker's database from the run's template, building that first if needed.

    Stale databases of dead runs are swept first.

    Raises:
        Exception: Whatever the schema setup or the server raised; nothing is left behind.
    """
    engine = admin_engine(server_url, driver)
    try:
        async with engine.connect() as conn:
            try:
                await sweep_stale(conn)
            except Exception:
                # Sweeping is housekeeping; a failure must not stop the tests.
                logger.warning("sweeping stale test databases failed", exc_info=True)
            await conn.execute(_LOCK, {"name": identity.lock_name})
            try:
                if not await _exists(conn, identity.template_name):
                    await _build_template(conn, identity, schema, server_url, driver)
                name = identity.database_name
                await _ddl(conn, "DROP DATABASE IF EXISTS %I WITH (FORCE)", name)
                await _ddl(conn, "CREATE DATABASE %I TEMPLATE %I", name, identity.template_name)
                await _ddl(
                    conn, "COMMENT ON DATABASE %I IS %L", name, owner_record(identity, "worker")
                )
            finally:
                await conn.execute(_UNLOCK, {"name": identity.lock_name})
    finally:
        await engine.dispose()


async def _drop_locked(conn: AsyncConnection, identity: RunIdentity, database: str | None) -> None:
    """Drop ``database`` (if given), then the template when no worker database is left."""
    if database is not None:
        await _ddl(conn, "DROP DATABASE IF EXISTS %I WITH (FORCE)", database)
    names = [row[0] for row in await conn.execute(_OURS, {"prefix": identity.prefix})]
    if all(name == identity.template_name for name in names):
        await _ddl(conn, "DROP DATABASE IF EXISTS %I WITH (FORCE)", identity.template_name)


async def drop_worker_database(
    server_url: str, driver: str, identity: RunIdentity, database: str
) -> None:
    """Drop a worker's database, and the run's template when it was the last one."""
    engine = admin_engine(server_url, driver)
    try:
        async with engine.connect() as conn:
            await conn.execute(_LOCK, {"name": identity.lock_name})
            try:
                await _drop_locked(conn, identity, database)
            finally:
                await conn.execute(_UNLOCK, {"name": identity.lock_name})
    finally:
        await engine.dispose()


async def sweep_stale(conn: AsyncConnection) -> list[str]:
    """Drop the databases of runs whose owner process on this machine is gone.

    A worker database goes when the process that created it no longer runs (its reaper
    was killed too, or the machine rebooted); a template goes when its run has no worker
    database left. A run someone is working on (its lock is held) is left alone, and so
    are databases without fkit-testing's owner record and those made on other machines.

    Returns:
        The names of the databases dropped.
    """
    runs: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for name, comment in await conn.execute(_OURS, {"prefix": DB_PREFIX}):
        record = parse_owner(comment)
        if record is not None and isinstance(record.get("run"), str):
            key = (record["run"], str(record.get("schema") or ""))
            runs.setdefault(key, {})[name] = record
    dropped: list[str] = []
    for (run, schema), databases in runs.items():
        dead = [
            n for n, r in databases.items() if r.get("role") == "worker" and owner_alive(r) is False
        ]
        workers = [n for n, r in databases.items() if r.get("role") == "worker"]
        if not dead and workers:
            continue
        identity = RunIdentity(run, "sweep", schema)
        if not await conn.scalar(_TRY_LOCK, {"name": identity.lock_name}):
            continue
        try:
            for name in dead:
                await _ddl(conn, "DROP DATABASE IF EXISTS %I WITH (FORCE)", name)
                dropped.append(name)
            if identity.template_name in databases:
                before = await _exists(conn, identity.template_name)
                await _drop_locked(conn, identity, None)
                if before and not await _exists(conn, identity.template_name):
                    dropped.append(identity.template_name)
        finally:
            await conn.execute(_UNLOCK, {"name": identity.lock_name})
    if dropped:
        logger.info("dropped stale test databases: %s", ", ".join(dropped))
    return dropped


async def truncate_tables(conn: AsyncConnection) -> list[str]:
    """Empty every table outside the system schemas except ``alembic_version``.

    Returns:
        The tables truncated, schema-qualified.
    """
    tables = [str(row[0]) for row in await conn.execute(_USER_TABLES)]
    if tables:
        await conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    return tables
