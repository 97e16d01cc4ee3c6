"""Who a session's work belongs to: its session manager, or nobody (a detached stand-in)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from fkit_core._bus import EventBus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = [
    "DETACHED",
    "ENGINE_INFO_KEY",
    "MANAGER_INFO_KEY",
    "WorkOwner",
    "engine_name_of",
    "owner_of",
]

MANAGER_INFO_KEY = "fkit.manager"
ENGINE_INFO_KEY = "fkit.engine_name"


class WorkOwner(Protocol):
    """What a session's work reports to: a name, a bus, in-flight work accounting.

    The session's :class:`~fkit_core.AsyncSessionManager`, or, for sessions no manager
    made, a detached stand-in whose bus nobody listens to and which drains nothing.

    Attributes:
        name: The manager's name, as events carry it.
        bus: The manager's event bus.
    """

    name: str
    bus: EventBus

    def enter_work(self) -> object:
        """Count work as in flight; returns a token for :meth:`leave_work`."""
        ...

    def leave_work(self, token: object | None) -> None:
        """End work counted by :meth:`enter_work`."""
        ...


class _Detached:
    """The owner of sessions from sessionmakers no manager made: no events, no draining."""

    name = "detached"

    def __init__(self) -> None:
        self.bus = EventBus()

    def enter_work(self) -> object:
        return None

    def leave_work(self, token: object | None) -> None:
        return None


DETACHED: WorkOwner = _Detached()


def owner_of(source: AsyncSession | async_sessionmaker[AsyncSession]) -> WorkOwner:
    """The manager a session (or sessionmaker) belongs to, or a detached stand-in.

    Args:
        source: A session or sessionmaker, from a manager or not.
    """
    info = source.info if hasattr(source, "sync_session") else source.kw.get("info") or {}  # type: ignore[union-attr]
    owner = info.get(MANAGER_INFO_KEY)
    return owner if owner is not None else DETACHED


def engine_name_of(session: AsyncSession) -> str:
    """The name of the engine a manager's session runs on (``"primary"``, ``"replica-1"``).

    ``"primary"`` for sessions no manager made.
    """
    name = session.info.get(ENGINE_INFO_KEY, "primary")
    return name if isinstance(name, str) else "primary"
