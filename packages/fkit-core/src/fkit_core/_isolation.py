"""Isolation levels, accepted as the enum or as strings in any case and spacing."""

from __future__ import annotations

from enum import StrEnum

from fkit_core.errors import ConfigurationError

__all__ = ["IsolationLevel", "IsolationLevelLike", "parse_isolation_level"]


class IsolationLevel(StrEnum):
    """The four SQL isolation levels PostgreSQL accepts.

    PostgreSQL runs READ UNCOMMITTED as READ COMMITTED; it is accepted for portability.
    """

    READ_UNCOMMITTED = "READ UNCOMMITTED"
    READ_COMMITTED = "READ COMMITTED"
    REPEATABLE_READ = "REPEATABLE READ"
    SERIALIZABLE = "SERIALIZABLE"


IsolationLevelLike = IsolationLevel | str
"""An :class:`IsolationLevel` or a string such as ``"repeatable read"`` or ``"SERIALIZABLE"``."""

_VALID = ", ".join(level.value for level in IsolationLevel)


def parse_isolation_level(value: IsolationLevelLike | None) -> IsolationLevel | None:
    """Normalise an isolation level: case-, space-, underscore- and dash-insensitive.

    Args:
        value: The enum, a string such as ``"read_committed"`` or ``" Repeatable  Read"``,
            or None for the server's default.

    Returns:
        The matching :class:`IsolationLevel`, or None when ``value`` is None.

    Raises:
        ConfigurationError: The value names no isolation level.
    """
    if value is None or isinstance(value, IsolationLevel):
        return value
    if isinstance(value, str):
        normalised = " ".join(value.replace("_", " ").replace("-", " ").upper().split())
        try:
            return IsolationLevel(normalised)
        except ValueError:
            pass
    raise ConfigurationError(
        f"isolation_level={value!r} is not an isolation level; expected one of {_VALID} "
        "(as IsolationLevel members or strings in any case)"
    )
