"""The user's schema, applied once per run to the template database.

What the ``fkit_schema`` fixture may return (or the ``fkit_schema`` ini option may name):
a ``MetaData``, anything with a ``metadata`` attribute (a declarative base), an
:class:`AlembicSchema`, a callable taking a connection (async or sync), a list of these
applied in order, or None for an empty database.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import os

    from sqlalchemy import MetaData
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "AlembicSchema",
    "apply_schema",
    "describe_schema",
    "load_reference",
    "schema_from_ini",
    "schema_key",
]


@dataclass(frozen=True, slots=True)
class AlembicSchema:
    """Build the template with Alembic: ``alembic upgrade <revision>``.

    Runs :func:`fkit_core.run_migrations`, so the ``env.py`` must take the database URL
    from ``config.attributes["fkit_url"]`` (the one ``fkit migrations init`` writes does),
    not from the application's own settings.

    Args:
        alembic_ini: Path of the ``alembic.ini``; relative paths are taken from the
            working directory.
        revision: The target revision.

    Example:
        >>> @pytest.fixture(scope="session")  # doctest: +SKIP
        ... def fkit_schema():
        ...     return AlembicSchema("alembic.ini")
    """

    alembic_ini: str | os.PathLike[str]
    revision: str = "head"


def load_reference(reference: str) -> object:
    """Import ``"package.module:attribute"`` (dots after the colon walk attributes).

    Raises:
        ValueError: The reference has no colon, or the module or attribute is missing.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        msg = f"expected 'package.module:attribute', got {reference!r}"
        raise ValueError(msg)
    try:
        value: object = importlib.import_module(module_name.strip())
    except ImportError as exc:
        msg = f"cannot import {module_name!r} for {reference!r}: {exc}"
        raise ValueError(msg) from exc
    for part in attribute.strip().split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            msg = f"{reference!r}: {type(value).__name__} has no attribute {part!r}"
            raise ValueError(msg) from None
    return value


def schema_from_ini(schema: str, alembic_ini: str, revision: str, rootpath: Path) -> object | None:
    """The schema named by the ini options ``fkit_schema`` / ``fkit_alembic_ini``.

    Raises:
        ValueError: Both are set, or the reference cannot be loaded.
    """
    if schema and alembic_ini:
        msg = "set one of the ini options fkit_schema and fkit_alembic_ini, not both"
        raise ValueError(msg)
    if alembic_ini:
        path = Path(alembic_ini)
        return AlembicSchema(path if path.is_absolute() else rootpath / path, revision or "head")
    if schema:
        return load_reference(schema)
    return None


def _is_metadata(value: object) -> bool:
    from sqlalchemy import MetaData

    return isinstance(value, MetaData)


def _metadata_of(schema: object) -> MetaData | None:
    if _is_metadata(schema):
        return cast("MetaData", schema)
    metadata = getattr(schema, "metadata", None)
    return cast("MetaData", metadata) if metadata is not None and _is_metadata(metadata) else None


def _fingerprint(schema: object) -> str:
    if schema is None:
        return "none"
    if isinstance(schema, list | tuple):
        return "[" + ",".join(_fingerprint(part) for part in schema) + "]"
    if isinstance(schema, AlembicSchema):
        return f"alembic:{Path(schema.alembic_ini).resolve()}:{schema.revision}"
    metadata = _metadata_of(schema)
    if metadata is not None:
        from sqlalchemy.dialects import postgresql
        from sqlalchemy.schema import CreateIndex, CreateTable

        dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
        ddl = []
        for table in metadata.sorted_tables:
            ddl.append(str(CreateTable(table).compile(dialect=dialect)))
            ddl += sorted(str(CreateIndex(i).compile(dialect=dialect)) for i in table.indexes)
        return "metadata:" + ";".join(ddl)
    kind = type(schema)
    module = getattr(schema, "__module__", None) or kind.__module__
    name = getattr(schema, "__qualname__", None) or kind.__qualname__
    # Two conftest.py files are both module "conftest": where the code is tells them apart.
    code = getattr(schema, "__code__", None) or getattr(kind.__call__, "__code__", None)
    where = f"@{code.co_filename}:{code.co_firstlineno}" if code is not None else ""
    return f"object:{module}.{name}{where}"


def schema_key(schema: object) -> str:
    """A short key naming ``schema``, the same in every process of a run.

    Metadata is keyed by its DDL, callables by their module, qualified name and source
    location, Alembic by the ini file and revision: different schemas get different
    template databases.
    """
    digest = hashlib.sha256(_fingerprint(schema).encode()).hexdigest()
    return digest[:8]


def describe_schema(schema: object) -> str:
    """A short description of a schema setup, for messages."""
    if schema is None:
        return "no schema (an empty database)"
    if isinstance(schema, AlembicSchema):
        return f"alembic upgrade {schema.revision} with {schema.alembic_ini}"
    if isinstance(schema, list | tuple):
        return " then ".join(describe_schema(part) for part in schema)
    return getattr(schema, "__qualname__", None) or type(schema).__name__


async def apply_schema(schema: object, url: str) -> None:
    """Apply ``schema`` to the database at ``url`` (a SQLAlchemy URL with its driver).

    Raises:
        TypeError: ``schema`` is none of the supported kinds.
    """
    if schema is None:
        return
    if isinstance(schema, list | tuple):
        for part in schema:
            await apply_schema(part, url)
        return
    if isinstance(schema, AlembicSchema):
        await _migrate(schema, url)
        return
    metadata = _metadata_of(schema)
    if metadata is not None:
        create_all = metadata.create_all
        await _in_transaction(url, lambda conn: conn.run_sync(create_all))
        return
    if callable(schema):
        await _in_transaction(url, lambda conn: _call(schema, conn))
        return
    msg = (
        f"fkit_schema returned {type(schema).__name__}; expected a MetaData, a declarative "
        "base, an AlembicSchema, a callable taking a connection, a list of these, or None"
    )
    raise TypeError(msg)


async def _call(setup: Any, conn: AsyncConnection) -> None:
    # An object with an async __call__ counts as async too.
    if inspect.iscoroutinefunction(setup) or inspect.iscoroutinefunction(type(setup).__call__):
        await setup(conn)
    else:
        await conn.run_sync(setup)


async def _in_transaction(url: str, work: Any) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await work(conn)
    finally:
        # No connection may stay open: the template is cloned right after this.
        await engine.dispose()


async def _migrate(schema: AlembicSchema, url: str) -> None:
    from fkit_core import AsyncSessionManager, run_migrations
    from fkit_core.settings import BasePostgresConfig

    manager = AsyncSessionManager(BasePostgresConfig(url=url), plugins=[], autoload=False)
    try:
        await run_migrations(manager, schema.alembic_ini, schema.revision)
    finally:
        await manager.close()
