"""UnConstrainedEnum: a Python enum stored as plain text, with nothing to migrate when it grows."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Text
from sqlalchemy.sql import operators

from fkit_core.errors import ConfigurationError
from fkit_types._column import FkitColumnType
from fkit_types._errors import InvalidStoredValueError, InvalidValueError

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.operators import OperatorType
    from sqlalchemy.types import TypeEngine

__all__ = ["UnConstrainedEnum"]

E = TypeVar("E", bound=enum.Enum)

# Operators that compare with whole members; any other (LIKE, <, ||) takes plain text.
_MEMBER_OPERATORS = frozenset(
    {
        operators.eq,
        operators.ne,
        operators.in_op,
        operators.not_in_op,
        operators.is_distinct_from,
        operators.is_not_distinct_from,
    }
)


class UnConstrainedEnum(FkitColumnType[E], Generic[E]):
    """A Python enum stored as the member's value in a ``TEXT`` column.

    There is no database enum type, no CHECK constraint and no length tied to the
    longest member, so adding a member (of any length) needs no migration of the column.
    Members' values must be strings (``class Role(str, Enum)`` or ``StrEnum``).

    Assigning or binding accepts a member or its value (``"admin"``); anything else
    raises :class:`InvalidValueError`. A stored value that names no member raises
    :class:`InvalidStoredValueError`, or reads as ``fallback`` when one is given (for
    rows written by a newer release that knows more members).

    Args:
        enum_class: The enum.
        fallback: The member to read unknown stored values as; None raises instead.

    Raises:
        ConfigurationError: A member's value is not a string, or ``fallback`` is not a member.
    """

    impl = Text
    cache_ok = True

    def __init__(self, enum_class: type[E], *, fallback: E | None = None) -> None:
        super().__init__()
        if not (isinstance(enum_class, type) and issubclass(enum_class, enum.Enum)):
            raise ConfigurationError(f"UnConstrainedEnum needs an Enum class, got {enum_class!r}")
        bad = [m.name for m in enum_class if not isinstance(m.value, str)]
        if bad:
            raise ConfigurationError(
                f"UnConstrainedEnum stores members' values as text, but {enum_class.__name__} "
                f"has members whose values are not strings: {', '.join(bad)}. "
                "Use string values (class Role(str, Enum) or enum.StrEnum)."
            )
        if fallback is not None and not isinstance(fallback, enum_class):
            raise ConfigurationError(
                f"fallback={fallback!r} is not a member of {enum_class.__name__}"
            )
        self.enum_class = enum_class
        self.fallback = fallback
        self._by_value: dict[str, E] = {m.value: m for m in enum_class}

    def __repr__(self) -> str:
        fallback = self.fallback
        extra = (
            f", fallback={self.enum_class.__name__}.{fallback.name}" if fallback is not None else ""
        )
        return f"UnConstrainedEnum({self.enum_class.__name__}{extra})"

    @property
    def python_type(self) -> type[E]:
        """The enum class."""
        return self.enum_class

    def _member(self, value: Any) -> E:
        if isinstance(value, self.enum_class):
            return value
        if isinstance(value, str):
            member = self._by_value.get(value)
            if member is not None:
                return member
        allowed = ", ".join(repr(v) for v in self._by_value)
        raise InvalidValueError(
            f"{self._where()} expects a {self.enum_class.__name__} member or one of its "
            f"values ({allowed}), got {value!r}",
            column=self.column_name,
        )

    def coerce_assigned(self, value: Any) -> E:
        """Turn an assigned member or value into the member."""
        return self._member(value)

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        value_text: str = self._member(value).value
        return value_text

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        if value is None:
            return None
        member = self._by_value.get(value)
        if member is not None:
            return member
        if self.fallback is not None:
            return self.fallback
        name = self.enum_class.__name__
        raise InvalidStoredValueError(
            f"{self._where()} holds {value!r}, which is not a value of {name}. Add the "
            "member to the enum, migrate the rows, or declare "
            f"UnConstrainedEnum({name}, fallback=...) to read unknown values as one member.",
            column=self.column_name,
            expected=name,
        )

    def coerce_compared_value(self, op: OperatorType | None, value: Any) -> TypeEngine[Any]:
        if op in _MEMBER_OPERATORS or isinstance(value, self.enum_class):
            return self
        return Text()
