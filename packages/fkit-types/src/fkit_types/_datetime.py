"""UTCDateTime: ``timestamptz`` that accepts only aware datetimes and always returns UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime

from fkit_types._column import FkitColumnType
from fkit_types._errors import InvalidValueError, NaiveDatetimeError

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.operators import OperatorType
    from sqlalchemy.types import TypeEngine

__all__ = ["UTCDateTime"]


class UTCDateTime(FkitColumnType[datetime]):
    """A ``TIMESTAMP WITH TIME ZONE`` column for aware datetimes, read back in UTC.

    A naive datetime is refused with :class:`NaiveDatetimeError`: it names no instant,
    and guessing (the server's zone, the machine's, UTC) is how wrong times get stored.
    Values are sent as UTC and read back with ``tzinfo=datetime.UTC`` whatever the
    session's ``TimeZone`` is. :class:`BaseTable` maps ``Mapped[datetime]`` to this type.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def __repr__(self) -> str:
        return "UTCDateTime()"

    @property
    def python_type(self) -> type[datetime]:
        """``datetime``."""
        return datetime

    def _to_utc(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise InvalidValueError(
                f"{self._where()} expects an aware datetime, got {type(value).__name__} {value!r}",
                column=self.column_name,
            )
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(
                f"{self._where()} got the naive datetime {value.isoformat()}, which names no "
                "instant. Give it a time zone: datetime.now(UTC), or "
                "value.replace(tzinfo=ZoneInfo(...)) for a known local time.",
                column=self.column_name,
            )
        return value.astimezone(UTC)

    def coerce_assigned(self, value: Any) -> datetime:
        """Check an assigned datetime and convert it to UTC."""
        return self._to_utc(value)

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else self._to_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # psycopg returns the session's zone (Europe/Moscow), asyncpg UTC: normalize.
        result: datetime = value.astimezone(UTC)
        return result

    def coerce_compared_value(self, op: OperatorType | None, value: Any) -> TypeEngine[Any]:
        # ``col - timedelta(...)`` or ``col + interval`` are intervals, not datetimes.
        if isinstance(value, datetime):
            return self
        return self.impl_instance.coerce_compared_value(op, value)
