"""Who a session's work belongs to: its session manager, or nobody (a detached stand-in)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from fkit_core._bus import EventBus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["DETACHED", "ENGINE_INFO_KEY", "MANAGER_INFO_KEY", "WorkOwner", "owner_of"]

MANAGER_INFO_KEY = "fkit.manager"
ENGINE_INFO_KEY = "fkit.engine_name"


class WorkOwner(Protocol):
    """What a transaction needs from its session manager: a name, a bus, work accounting."""

    name: str
    bus: EventBus

    def _enter_work(self) -> object: ...

    def _leave_work(self, token: object | None) -> None: ...


class _Detached:
    """The owner of sessions from sessionmakers no manager made: no events, no draining."""

    name = "detached"

    def __init__(self) -> None:
        self.bus = EventBus()

    def _enter_work(self) -> object:
        return None

    def _leave_work(self, token: object | None) -> None:
        return None


DETACHED: WorkOwner = _Detached()


def owner_of(source: AsyncSession | async_sessionmaker[AsyncSession]) -> WorkOwner:
    """The manager a session (or sessionmaker) belongs to, or :data:`DETACHED`."""
    info = source.info if hasattr(source, "sync_session") else source.kw.get("info") or {}  # type: ignore[union-attr]
    owner = info.get(MANAGER_INFO_KEY)
    return owner if owner is not None else DETACHED
