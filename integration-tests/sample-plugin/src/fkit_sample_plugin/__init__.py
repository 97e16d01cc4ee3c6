"""A minimal fkit plugin: records the managers it was set up on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager

__all__ = ["SamplePlugin", "plugin"]


class SamplePlugin:
    """Counts the events it sees, so tests can prove it was really wired."""

    name = "sample"
    requires_core = ">=0.1,<0.2"

    def __init__(self) -> None:
        self.managers: list[AsyncSessionManager] = []
        self.events: list[object] = []

    def setup(self, manager: AsyncSessionManager) -> None:
        """Subscribe to every event of the manager's bus."""
        self.managers.append(manager)
        manager.bus.subscribe_all(self.events.append)


plugin = SamplePlugin()
