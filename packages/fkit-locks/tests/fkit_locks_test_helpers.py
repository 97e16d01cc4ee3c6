"""Helpers shared by fkit-locks' tests: lock tags, a view of ``pg_locks``, waiting."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy import text

from fkit_locks import lock_key

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncConnection

# Hang guard only: every wait below ends as soon as its condition holds.
HANG_GUARD = 60.0


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` until it holds; fail (not time) if it never does."""
    try:
        async with asyncio.timeout(HANG_GUARD):
            # Polling on purpose: the condition is server state (pg_locks), not an event.
            while not await condition():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def locktag(key: object) -> tuple[int, int, int]:
    """``(classid, objid, objsubid)`` of an advisory lock key, as ``pg_locks`` shows it."""
    value = lock_key(key)  # type: ignore[arg-type]
    if isinstance(value, tuple):
        return value[0] & 0xFFFFFFFF, value[1] & 0xFFFFFFFF, 2
    unsigned = value & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF, 1


class LockView:
    """Reads ``pg_locks`` on a connection of its own (outside every manager under test)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def advisory(self, key: object) -> list[tuple[int, str, bool]]:
        """``(pid, mode, granted)`` of every advisory lock row for ``key``."""
        classid, objid, objsubid = locktag(key)
        result = await self.connection.execute(
            text(
                "SELECT pid, mode, granted FROM pg_locks WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND classid = CAST(:c AS oid) AND objid = CAST(:o AS oid) AND objsubid = :s "
                "ORDER BY granted DESC, pid"
            ),
            {"c": classid, "o": objid, "s": objsubid},
        )
        return [(int(r[0]), str(r[1]), bool(r[2])) for r in result]

    async def holders(self, key: object) -> list[int]:
        return [pid for pid, _, granted in await self.advisory(key) if granted]

    async def waiters(self, key: object) -> list[int]:
        return [pid for pid, _, granted in await self.advisory(key) if not granted]

    async def relation(self, regclass: str) -> list[tuple[int, str, bool]]:
        """``(pid, mode, granted)`` of every lock row on a relation (a quoted name)."""
        result = await self.connection.execute(
            text(
                "SELECT pid, mode, granted FROM pg_locks WHERE locktype = 'relation' "
                "AND relation = to_regclass(:name) ORDER BY granted DESC, pid, mode"
            ),
            {"name": regclass},
        )
        return [(int(r[0]), str(r[1]), bool(r[2])) for r in result]

    async def alive(self, pid: int) -> bool:
        result = await self.connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
        return bool(result.scalar_one())
