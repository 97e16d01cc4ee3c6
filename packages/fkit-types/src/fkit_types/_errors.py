"""The errors fkit-types raises; each derives from ``fkit_core.errors.FkitError``."""

from __future__ import annotations

from sqlalchemy.orm import exc as orm_exc

from fkit_core.errors import FkitError

__all__ = [
    "InvalidStoredValueError",
    "InvalidValueError",
    "NaiveDatetimeError",
    "StaleDataError",
]


class InvalidValueError(FkitError, ValueError):
    """A value given to a column does not fit the column's type.

    Raised when the value is assigned to a mapped attribute, or when it is bound to a
    statement (SQLAlchemy then wraps it in ``sqlalchemy.exc.StatementError``; this error
    is its ``orig``). A pydantic ``ValidationError``, when there is one, is chained.

    Attributes:
        column: The column, as ``table.column``, when known.
    """

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class NaiveDatetimeError(InvalidValueError):
    """A datetime without a time zone was given to a :class:`UTCDateTime` column."""


class InvalidStoredValueError(FkitError, ValueError):
    """A value read from the database does not fit the column's Python type.

    A JSON document that no longer validates against its pydantic model, or text that
    names no member of the enum (and the column has no fallback). The stored value is
    never handed back half-converted. A pydantic ``ValidationError``, when there is one,
    is chained.

    Attributes:
        column: The column, as ``table.column``, when known.
        expected: The Python type the column produces, e.g. ``"Preferences"``.
    """

    def __init__(self, message: str, *, column: str | None, expected: str) -> None:
        super().__init__(message)
        self.column = column
        self.expected = expected


class StaleDataError(FkitError, orm_exc.StaleDataError):
    """An UPDATE or DELETE guarded by a version counter matched no row.

    Another transaction changed (or deleted) the row since this session loaded it. Reload
    the object and apply the change again. It is also a
    ``sqlalchemy.orm.exc.StaleDataError``, which is chained as ``__cause__``, so existing
    ``except`` clauses keep working.
    """
