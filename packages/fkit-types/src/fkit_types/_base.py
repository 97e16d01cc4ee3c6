"""BaseTable: the declarative base, with constraint names fit for Alembic and an I/O-free repr."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import MetaData, inspect
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase

from fkit_types._datetime import UTCDateTime

__all__ = ["NAMING_CONVENTION", "BaseTable"]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names for ``MetaData(naming_convention=...)``.

Named constraints can be dropped and altered by Alembic migrations, and the names are
the same on every database (``pk_users``, ``uq_users_email``, ``fk_orders_user_id_users``,
``ix_users_name``, ``ck_users_positive_age``). SQLAlchemy shortens names longer than
PostgreSQL's 63 bytes deterministically. A CHECK constraint needs a ``name=``.
"""


def repr_primary_key(obj: object) -> str:
    """``<ClassName pk=value>`` built from what is in memory: never a query, never a lazy load."""
    state = inspect(obj)
    mapper = state.mapper
    name = type(obj).__name__
    keys = [mapper.get_property_by_column(column).key for column in mapper.primary_key]
    identity = state.identity  # set once flushed or loaded; survives expiry and deletion
    if identity is not None:
        values: list[Any] = list(identity)
    else:
        values = [state.dict.get(key) for key in keys]
    pairs = " ".join(f"{key}={value!r}" for key, value in zip(keys, values, strict=True))
    return f"<{name} {pairs}>"


class BaseTable(AsyncAttrs, DeclarativeBase):
    """Declarative base for fkit models.

    - ``metadata`` uses :data:`NAMING_CONVENTION`, so Alembic autogenerate emits named
      constraints and finds no spurious differences.
    - ``Mapped[datetime]`` maps to :class:`UTCDateTime` (``timestamptz``, aware only).
    - ``__repr__`` shows the class and primary key only and never performs I/O, so it is
      safe on expired or detached instances (no ``MissingGreenlet`` in a log line).
    - ``AsyncAttrs`` gives ``await obj.awaitable_attrs.children`` for lazy relationships.

    For a separate ``MetaData`` (one per service or per test), subclass it abstractly::

        class Base(BaseTable):
            __abstract__ = True
            metadata = MetaData(naming_convention=NAMING_CONVENTION)
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # A class, not an instance: each column gets its own, so errors can name the column.
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}

    def __repr__(self) -> str:
        return repr_primary_key(self)
