"""In-flight work of a session manager: counted while it runs, drained or cancelled at close."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core._owner import WorkOwner

__all__ = ["TrackedSession", "WorkTracker"]


class WorkTracker:
    """Remembers which task runs each unit of work, so that close() can wait for it or cancel it."""

    __slots__ = ("_closer", "_drained", "_running")

    def __init__(self) -> None:
        self._running: dict[object, asyncio.Task[Any] | None] = {}
        self._drained: asyncio.Event | None = None
        self._closer: asyncio.Task[Any] | None = None

    def __len__(self) -> int:
        return len(self._running)

    def enter(self) -> object:
        """Count a unit of work that starts now, in the current task; returns its token."""
        token = object()
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        self._running[token] = task
        return token

    def leave(self, token: object | None) -> None:
        """Forget a finished unit of work."""
        self._running.pop(token, None)
        if self._drained is not None and self._only_the_closer_left():
            self._drained.set()

    def _only_the_closer_left(self) -> bool:
        # Work held by the task that is closing cannot finish while that task waits.
        return all(task is self._closer for task in self._running.values())

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` for the work of other tasks; then cancel what is left.

        Returns:
            How many tasks were cancelled.
        """
        self._closer = asyncio.current_task()
        if self._only_the_closer_left():
            return 0
        self._drained = asyncio.Event()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return 0
        except TimeoutError:
            pass
        tasks = {
            t
            for t in self._running.values()
            if t is not None and t is not self._closer and not t.done()
        }
        for task in tasks:
            task.cancel()
        if tasks:
            # Give cancelled work a moment to roll back before the engines go away.
            await asyncio.wait(tasks, timeout=max(timeout, 5.0))
        return len(tasks)


class TrackedSession:
    """Async context manager yielding a plain session counted as in-flight work."""

    __slots__ = ("_owner", "_session", "_token")

    def __init__(self, owner: WorkOwner, session: AsyncSession) -> None:
        self._owner = owner
        self._session = session
        self._token: object | None = None

    async def __aenter__(self) -> AsyncSession:
        self._token = self._owner.enter_work()
        return self._session

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._session.close()
        finally:
            self._owner.leave_work(self._token)
