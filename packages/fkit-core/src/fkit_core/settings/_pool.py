"""How connections are pooled: :class:`PoolSettings`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Self

import sqlalchemy.pool
from pydantic import Field, field_validator, model_validator

from fkit_core.settings._base import SettingsModel

if TYPE_CHECKING:
    from sqlalchemy.pool import Pool

__all__ = ["ASYNC_POOL_CLASSES", "PoolSettings", "pool_class_of", "pool_engine_kwargs"]

ASYNC_POOL_CLASSES: Final[tuple[str, ...]] = (
    "AssertionPool",
    "AsyncAdaptedQueuePool",
    "NullPool",
    "StaticPool",
)
"""Pool class names an async engine accepts (SQLAlchemy rejects the others at engine creation)."""

# Queue pools take size/overflow/timeout/LIFO arguments; SQLAlchemy rejects those
# arguments for every other pool class.
_QUEUE_POOL_CLASSES: Final = ("AsyncAdaptedQueuePool",)
_SYNC_POOL_ADVICE: Final = {
    "QueuePool": "use 'AsyncAdaptedQueuePool', its asyncio-adapted form",
    "SingletonThreadPool": "it keeps one connection per thread, which means nothing to asyncio",
}


class PoolSettings(SettingsModel):
    """Connection pool settings, mapped onto SQLAlchemy's ``create_async_engine`` arguments.

    Attributes:
        size: Connections kept open in the pool (``pool_size``), at least 1.
        max_overflow: Extra connections allowed beyond ``size`` under load, at least 0.
        timeout: Seconds to wait for a free connection before giving up, above 0.
        recycle: Close connections older than this many seconds; ``None`` never does.
        pre_ping: Test each connection with a round trip when it is checked out.
        lifo: Reuse the most recently returned connection first, which lets idle
            connections time out on the server side.
        null_pool: Open a new connection per checkout (SQLAlchemy's ``NullPool``), for
            when an external pooler such as pgbouncer does the pooling.
        pool_class: The name of a SQLAlchemy pool class that works with asyncio, one of
            ``AssertionPool``, ``AsyncAdaptedQueuePool``, ``NullPool``, ``StaticPool``.
            ``None`` uses SQLAlchemy's default, ``AsyncAdaptedQueuePool``.
        connect_timeout: Seconds to open a new connection before giving up; ``None``
            leaves the driver's default (asyncpg waits 60 s, psycopg forever).
    """

    size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    timeout: float = Field(default=30.0, gt=0)
    recycle: float | None = Field(default=None, gt=0)
    pre_ping: bool = False
    lifo: bool = False
    null_pool: bool = False
    pool_class: str | None = None
    connect_timeout: float | None = Field(default=None, gt=0)

    @field_validator("pool_class")
    @classmethod
    def _known_async_pool(cls, value: str | None) -> str | None:
        if value is None or value in ASYNC_POOL_CLASSES:
            return value
        choices = ", ".join(ASYNC_POOL_CLASSES)
        advice = _SYNC_POOL_ADVICE.get(value)
        if advice is not None:
            raise ValueError(
                f"{value} is a pool for threads and blocking drivers; an async engine needs "
                f"an async-adapted pool: {advice}. Choose one of {choices}"
            )
        raise ValueError(f"unknown pool class; choose one of {choices}")

    @model_validator(mode="after")
    def _one_way_to_pick_the_class(self) -> Self:
        if self.null_pool and self.pool_class is not None:
            raise ValueError(
                "null_pool and pool_class are both set; set null_pool=True alone, "
                "or pool_class alone (pool_class='NullPool' is the same as null_pool=True)"
            )
        return self


def pool_class_of(pool: PoolSettings) -> type[Pool]:
    """The SQLAlchemy pool class the settings select.

    Args:
        pool: Validated pool settings.

    Returns:
        ``NullPool`` when ``null_pool`` is set, the named ``pool_class`` when one is
        given, ``AsyncAdaptedQueuePool`` otherwise.
    """
    name = "NullPool" if pool.null_pool else (pool.pool_class or "AsyncAdaptedQueuePool")
    pool_class: type[Pool] = getattr(sqlalchemy.pool, name)
    return pool_class


def pool_engine_kwargs(pool: PoolSettings) -> dict[str, Any]:
    """The ``create_async_engine`` pool arguments, only those the pool class accepts.

    Args:
        pool: Validated pool settings.

    Returns:
        A fresh dict with ``poolclass``, ``pool_recycle`` (``-1`` for never),
        ``pool_pre_ping`` and, for queue pools, ``pool_size``, ``max_overflow``,
        ``pool_timeout`` and ``pool_use_lifo``.
    """
    pool_class = pool_class_of(pool)
    kwargs: dict[str, Any] = {
        "poolclass": pool_class,
        "pool_recycle": -1 if pool.recycle is None else pool.recycle,
        "pool_pre_ping": pool.pre_ping,
    }
    if pool_class.__name__ in _QUEUE_POOL_CLASSES:
        kwargs.update(
            pool_size=pool.size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.timeout,
            pool_use_lifo=pool.lifo,
        )
    return kwargs
