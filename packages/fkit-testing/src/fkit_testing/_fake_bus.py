"""``RecordingEventBus``: an event bus that keeps everything emitted on it."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from fkit_core import EventBus

if TYPE_CHECKING:
    from fkit_core.events import Event

__all__ = ["RecordingEventBus"]

E = TypeVar("E")


class RecordingEventBus(EventBus):
    """An :class:`fkit_core.EventBus` that records every event emitted on it.

    It *wants* every event type, so emitters that check :meth:`wants` before building an
    event always build it; subscribers still receive events as on any bus. Use it for
    unit tests of code that emits events (plugins, fakes such as
    :class:`~fkit_testing.FakeAdvisoryLocks`) or of subscribers.

    Attributes:
        events: Every emitted event, in order.

    Example:
        >>> bus = RecordingEventBus()  # doctest: +SKIP
        >>> FakeAdvisoryLocks(bus=bus).hold("job")
        >>> bus.names()
        ['LockAcquired']
    """

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def wants(self, event_type: type[Event]) -> bool:
        """Always True: everything is recorded."""
        return True

    def emit(self, event: Event) -> None:
        """Record ``event``, then deliver it to the subscribers."""
        self.events.append(event)
        super().emit(event)

    def of_type(self, *event_types: type[E]) -> list[E]:
        """The recorded events that are instances of any of ``event_types``."""
        return [event for event in self.events if isinstance(event, event_types)]

    def names(self) -> list[str]:
        """The class names of the recorded events, in order."""
        return [type(event).__name__ for event in self.events]

    def clear(self) -> None:
        """Forget the recorded events (subscriptions stay)."""
        self.events.clear()
