"""``FakeAdvisoryLocks``: PostgreSQL advisory lock semantics in memory."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING

from fkit_core.errors import LockNotAvailableError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable

    from fkit_core import EventBus

__all__ = ["FakeAdvisoryLocks", "LockRecord"]

ELSEWHERE = "elsewhere"


class _NotAcquired(LockNotAvailableError, TimeoutError):
    """Raised when a lock is not taken in time; the same classes fkit-locks' error has."""


@dataclass(frozen=True, slots=True)
class LockRecord:
    """One thing that happened to a fake lock.

    Attributes:
        action: ``"acquired"``, ``"not_acquired"`` or ``"released"``.
        key: The lock key as given.
        owner: Who asked (an asyncio task unless ``owner=`` was given).
        shared: Whether the shared variant was asked for.
    """

    action: str
    key: Hashable
    owner: object
    shared: bool


class FakeAdvisoryLocks:
    """Advisory locks in memory, with PostgreSQL's semantics, for unit tests.

    Each *owner* stands for a database session: by default the asyncio task that asks.
    An owner can take a lock it holds again (it then has to release it as many times);
    shared holders coexist; an exclusive holder excludes everyone else. :meth:`hold`
    makes another process hold a lock, to test the "somebody else is already doing it"
    path. Every acquisition, refusal and release is recorded in :attr:`history` and, when
    a ``bus`` is given, emitted as ``LockAcquired`` / ``LockNotAcquired`` /
    ``LockReleased`` like fkit-locks does.

    A lock not taken within ``timeout`` raises ``fkit_core.errors.LockNotAvailableError``
    (also a ``TimeoutError``), the classes fkit-locks' ``LockNotAcquiredError`` derives
    from; catch those in code that must run with either.

    Args:
        bus: An event bus to report on (a ``RecordingEventBus``, a manager's bus).
        manager_name: The ``manager`` field of the events.

    Example:
        >>> locks = FakeAdvisoryLocks()  # doctest: +SKIP
        >>> locks.hold("nightly-report")
        >>> await locks.try_lock("nightly-report")
        False
    """

    def __init__(self, *, bus: EventBus | None = None, manager_name: str = "fake") -> None:
        self._bus = bus
        self._manager_name = manager_name
        # key -> owner -> [exclusive count, shared count]
        self._held: dict[Hashable, dict[object, list[int]]] = {}
        self._acquired_at: dict[tuple[Hashable, object, bool], float] = {}
        self._changed: asyncio.Event | None = None
        self.history: list[LockRecord] = []

    def __repr__(self) -> str:
        return f"<FakeAdvisoryLocks held={sorted(map(repr, self._held))}>"

    # -- what code under test calls --------------------------------------------------------

    async def try_lock(self, key: Hashable, *, shared: bool = False, owner: object = None) -> bool:
        """Take the lock if it is free (for this owner); never wait."""
        return self._try(key, shared, self._owner(owner), perf_counter())

    @contextlib.asynccontextmanager
    async def lock(
        self,
        key: Hashable,
        *,
        shared: bool = False,
        timeout: float | None = None,
        owner: object = None,
    ) -> AsyncIterator[None]:
        """``async with locks.lock(key):`` wait for the lock, hold it for the block.

        Raises:
            LockNotAvailableError: Not taken within ``timeout`` seconds (also a TimeoutError).
        """
        who = self._owner(owner)
        await self.acquire(key, shared=shared, timeout=timeout, owner=who)
        try:
            yield
        finally:
            self._release(key, shared, who)

    async def acquire(
        self,
        key: Hashable,
        *,
        shared: bool = False,
        timeout: float | None = None,
        owner: object = None,
    ) -> None:
        """Wait until the lock is taken (release it with :meth:`unlock`).

        Raises:
            LockNotAvailableError: Not taken within ``timeout`` seconds (also a TimeoutError).
        """
        who = self._owner(owner)
        started = perf_counter()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._free_for(key, shared, who):
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                self._record("not_acquired", key, who, shared, perf_counter() - started)
                raise _NotAcquired(
                    f"advisory lock {key!r} was not acquired within {timeout}s", sqlstate="55P03"
                )
            changed = self._changed_event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        self._take(key, shared, who, started)

    async def unlock(self, key: Hashable, *, shared: bool = False, owner: object = None) -> bool:
        """Release one hold of the lock; False (like PostgreSQL) when it was not held."""
        return self._release(key, shared, self._owner(owner))

    def release_all(self, owner: object = None) -> int:
        """Release every lock ``owner`` holds, as the end of its transaction would.

        Returns:
            How many holds were released.
        """
        who = self._owner(owner)
        released = 0
        for key in list(self._held):
            counts = self._held[key].get(who)
            while counts is not None and (counts[0] or counts[1]):
                self._release(key, counts[0] == 0, who)
                released += 1
                counts = self._held.get(key, {}).get(who)
        return released

    # -- test helpers ---------------------------------------------------------------------

    def hold(self, key: Hashable, *, shared: bool = False, owner: object = ELSEWHERE) -> None:
        """Make ``owner`` (another process, by default) hold the lock now.

        Raises:
            LockNotAvailableError: Someone else holds it in a conflicting mode.
        """
        if not self._try(key, shared, owner, perf_counter()):
            raise _NotAcquired(f"advisory lock {key!r} is held elsewhere", sqlstate="55P03")

    def free(self, key: Hashable, *, owner: object = ELSEWHERE) -> None:
        """Release everything ``owner`` (another process, by default) holds on ``key``."""
        counts = self._held.get(key, {}).get(owner)
        while counts is not None and (counts[0] or counts[1]):
            self._release(key, counts[0] == 0, owner)
            counts = self._held.get(key, {}).get(owner)

    def is_locked(self, key: Hashable) -> bool:
        """Whether anyone holds ``key``."""
        return key in self._held

    def holders(self, key: Hashable) -> list[object]:
        """Who holds ``key``."""
        return list(self._held.get(key, {}))

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _owner(owner: object) -> object:
        if owner is not None:
            return owner
        try:
            return asyncio.current_task() or "main"
        except RuntimeError:
            return "main"

    def _changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _free_for(self, key: Hashable, shared: bool, owner: object) -> bool:
        for other, (exclusive, shared_count) in self._held.get(key, {}).items():
            if other == owner:
                continue
            if exclusive or (not shared and shared_count):
                return False
        return True

    def _try(self, key: Hashable, shared: bool, owner: object, started: float) -> bool:
        if not self._free_for(key, shared, owner):
            self._record("not_acquired", key, owner, shared, perf_counter() - started)
            return False
        self._take(key, shared, owner, started)
        return True

    def _take(self, key: Hashable, shared: bool, owner: object, started: float) -> None:
        counts = self._held.setdefault(key, {}).setdefault(owner, [0, 0])
        counts[1 if shared else 0] += 1
        now = perf_counter()
        self._acquired_at.setdefault((key, owner, shared), now)
        self._record("acquired", key, owner, shared, now - started)

    def _release(self, key: Hashable, shared: bool, owner: object) -> bool:
        owners = self._held.get(key, {})
        counts = owners.get(owner)
        index = 1 if shared else 0
        if counts is None or counts[index] == 0:
            return False
        counts[index] -= 1
        held_since = self._acquired_at.get((key, owner, shared), perf_counter())
        if counts[index] == 0:
            self._acquired_at.pop((key, owner, shared), None)
        if counts == [0, 0]:
            del owners[owner]
        if not owners:
            self._held.pop(key, None)
        self._record("released", key, owner, shared, perf_counter() - held_since)
        if self._changed is not None:
            # Wake every waiter; each checks again whether the lock is free for it.
            self._changed.set()
            self._changed = None
        return True

    def _record(
        self, action: str, key: Hashable, owner: object, shared: bool, seconds: float
    ) -> None:
        self.history.append(LockRecord(action, key, owner, shared))
        bus = self._bus
        if bus is None:
            return
        from fkit_core.events import LockAcquired, LockNotAcquired, LockReleased

        event_type = {
            "acquired": LockAcquired,
            "not_acquired": LockNotAcquired,
            "released": LockReleased,
        }[action]
        if bus.wants(event_type):
            bus.emit(event_type(self._manager_name, str(key), seconds, "session", shared))
