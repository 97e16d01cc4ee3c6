"""``LockMode``: PostgreSQL's eight table lock modes, also accepted by name."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TypeAlias

from fkit_locks._errors import LockModeError

__all__ = ["LockMode", "LockModeLike", "parse_lock_mode"]


class LockMode(StrEnum):
    """The table lock modes of ``LOCK TABLE ... IN <mode> MODE``, weakest first.

    ``LockMode("access exclusive")``, ``LockMode("ACCESS_EXCLUSIVE")`` and
    ``LockMode("Access-Exclusive")`` all give ``LockMode.ACCESS_EXCLUSIVE``: case, spaces,
    underscores and hyphens do not matter. Anything else raises :class:`LockModeError`
    listing the modes.
    """

    ACCESS_SHARE = "ACCESS SHARE"
    ROW_SHARE = "ROW SHARE"
    ROW_EXCLUSIVE = "ROW EXCLUSIVE"
    SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
    SHARE = "SHARE"
    SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
    EXCLUSIVE = "EXCLUSIVE"
    ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"

    @property
    def self_conflicting(self) -> bool:
        """Whether two transactions cannot hold this mode on one table at the same time.

        ``ACCESS SHARE``, ``ROW SHARE``, ``ROW EXCLUSIVE`` and ``SHARE`` do not conflict
        with themselves; lock events report them as ``shared=True``.
        """
        return self not in _SHARED

    @property
    def pg_name(self) -> str:
        """The name ``pg_locks.mode`` shows for it, e.g. ``"AccessExclusiveLock"``."""
        return "".join(word.capitalize() for word in self.value.split()) + "Lock"

    @classmethod
    def _missing_(cls, value: object) -> LockMode:
        return parse_lock_mode(value)


_SHARED = frozenset(
    {LockMode.ACCESS_SHARE, LockMode.ROW_SHARE, LockMode.ROW_EXCLUSIVE, LockMode.SHARE}
)
_SEPARATORS = re.compile(r"[\s_\-]+")
_BY_NAME = {mode.value: mode for mode in LockMode}

LockModeLike: TypeAlias = LockMode | str
"""A :class:`LockMode` or its name (``"EXCLUSIVE"``, ``"access exclusive"``, ...)."""


def parse_lock_mode(value: object) -> LockMode:
    """The :class:`LockMode` for a mode or its name in any case and spacing.

    Raises:
        LockModeError: Not one of the eight modes; the message lists them.
    """
    if isinstance(value, LockMode):
        return value
    if isinstance(value, str):
        found = _BY_NAME.get(_SEPARATORS.sub(" ", value).strip().upper())
        if found is not None:
            return found
    modes = ", ".join(mode.value for mode in LockMode)
    raise LockModeError(
        f"unknown table lock mode {value!r}; use a LockMode or one of: {modes} "
        "(case, spaces and underscores do not matter)"
    )
