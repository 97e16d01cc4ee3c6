"""The ``locks`` plugin: registers fkit-locks with the managers it is set up for.

The lock functions work on any session and manager without it (they find the manager
through the session); the plugin makes fkit-locks visible in ``manager.plugins`` and
in ``ManagerStarted``, and tells whether a manager was set up with it.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager

__all__ = ["LocksPlugin", "plugin"]


class LocksPlugin:
    """The ``locks`` plugin object (``fkit.plugins`` entry point ``locks``).

    Attributes:
        name: ``"locks"``.
        requires_core: The fkit-core versions it works with.
    """

    name = "locks"
    requires_core = ">=0.1,<0.2"

    def __init__(self) -> None:
        self._managers: weakref.WeakSet[AsyncSessionManager] = weakref.WeakSet()

    def setup(self, manager: AsyncSessionManager) -> None:
        """Record the manager; nothing else is needed for locks to work."""
        self._managers.add(manager)

    def teardown(self, manager: AsyncSessionManager) -> None:
        """Forget the manager."""
        self._managers.discard(manager)

    def is_set_up(self, manager: AsyncSessionManager) -> bool:
        """Whether ``manager`` was started with this plugin and not closed since."""
        return manager in self._managers

    def __repr__(self) -> str:
        return f"<LocksPlugin managers={len(self._managers)}>"


plugin = LocksPlugin()
"""The instance the ``fkit.plugins`` entry point names."""
