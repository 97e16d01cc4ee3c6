"""Read replicas: round robin over the replicas not known to be down, else the primary."""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING

from fkit_core._translate import translate_error
from fkit_core.errors import ConnectionLostError, TooManyConnectionsError
from fkit_core.events import ReplicaFallback

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from fkit_core._manager import AsyncSessionManager

__all__ = ["ReplicaRouter"]


class ReplicaRouter:
    """Chooses the engine for a read that may go to a replica.

    A replica that fails to connect (or fails a health check) is skipped for
    :attr:`retry_after` seconds; a health check that passes brings it back at once.
    When no replica is usable, reads go to the primary and ``ReplicaFallback`` is emitted.
    """

    retry_after = 5.0

    def __init__(
        self, manager: AsyncSessionManager, makers: dict[str, async_sessionmaker[AsyncSession]]
    ) -> None:
        self._manager = manager
        self._makers = makers
        self._names = [name for name in makers if name != "primary"]
        self._turn = 0
        self._down_until: dict[str, float] = {}

    @property
    def replicas(self) -> tuple[str, ...]:
        """The replica engine names, in rotation order."""
        return tuple(self._names)

    def next_maker(self) -> async_sessionmaker[AsyncSession]:
        """The next usable replica's sessionmaker, or the primary's when none is usable."""
        if not self._names:
            return self._makers["primary"]
        now = monotonic()
        for _ in range(len(self._names)):
            name = self._names[self._turn % len(self._names)]
            self._turn += 1
            if self._down_until.get(name, 0.0) <= now:
                return self._makers[name]
        bus = self._manager.bus
        if bus.wants(ReplicaFallback):
            bus.emit(
                ReplicaFallback(self._manager.name, tuple(self._names), "no replica is reachable")
            )
        return self._makers["primary"]

    def observe(self, engine_name: str, healthy: bool) -> None:
        """Record a health-check result for a replica (the primary is ignored)."""
        if engine_name not in self._names:
            return
        if healthy:
            self._down_until.pop(engine_name, None)
        else:
            self._down_until[engine_name] = monotonic() + self.retry_after

    def reroute(self, engine_name: str, error: BaseException) -> AsyncSession | None:
        """After a replica failed to begin a read, a session on the next choice, or None.

        Only connection failures move the read elsewhere: a replica that answered with an
        SQL error would answer the same way anywhere.
        """
        if engine_name not in self._names:
            return None
        if not isinstance(translate_error(error), (ConnectionLostError, TooManyConnectionsError)):
            return None
        self.observe(engine_name, healthy=False)
        return self.next_maker()()
