"""The ``types`` plugin: a JSON serializer for every engine, TypesSession for the sessions.

This module is what the ``fkit.plugins`` entry point loads, so it imports nothing heavy;
the serializer and the session class are imported when a manager uses them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fkit_core.events import ManagerStarted

if TYPE_CHECKING:
    from fkit_core import AsyncSessionManager
    from fkit_core.events import EngineRole

__all__ = ["TypesPlugin", "plugin"]

logger = logging.getLogger("fkit_types")


class TypesPlugin:
    """Wires fkit-types into a session manager.

    - Every engine gets :func:`json_dumps` as its ``json_serializer`` (unless the
      engine options already name one), so ``JSON``/``JSONB`` columns accept pydantic
      models, datetimes, UUIDs, Decimals and enums.
    - The primary sessionmaker's ``sync_session_class`` becomes :class:`TypesSession`
      (unless you configured a class of your own), so a stale version raises
      :class:`fkit_types.StaleDataError`.

    No ``json_deserializer`` is set: a global reader cannot know that a JSON string was a
    datetime; a column's type can, and :class:`PydanticJSONB` reads with its own.

    Args:
        json_serializer: Install the serializer.
        session_class: Install :class:`TypesSession`.
    """

    name = "types"
    requires_core = ">=0.1,<0.2"

    def __init__(self, *, json_serializer: bool = True, session_class: bool = True) -> None:
        self.json_serializer = json_serializer
        self.session_class = session_class

    def __repr__(self) -> str:
        return (
            f"TypesPlugin(json_serializer={self.json_serializer}, "
            f"session_class={self.session_class})"
        )

    def setup(self, manager: AsyncSessionManager) -> None:
        """Register the engine-options hook and, once started, configure the sessionmaker."""
        if self.json_serializer:
            manager.bus.add_engine_options_hook(_engine_options)
        if self.session_class:

            def on_started(event: ManagerStarted) -> None:
                _install_session_class(manager)

            manager.bus.subscribe(ManagerStarted, on_started)


def _engine_options(engine_name: str, role: EngineRole, options: dict[str, Any]) -> None:
    from fkit_types._json import json_dumps

    options.setdefault("json_serializer", json_dumps)


def _install_session_class(manager: AsyncSessionManager) -> None:
    from sqlalchemy.orm import Session

    from fkit_types._session import TypesSession

    maker = manager.session_maker
    current = maker.kw.get("sync_session_class", Session)
    if current is Session:
        maker.configure(sync_session_class=TypesSession)
    elif not issubclass(current, TypesSession):
        logger.info(
            "fkit-types leaves %s's sync_session_class %s as configured; stale versions "
            "raise SQLAlchemy's StaleDataError there",
            manager.name,
            current.__qualname__,
        )


plugin = TypesPlugin()
"""The instance the ``fkit.plugins`` entry point names."""
