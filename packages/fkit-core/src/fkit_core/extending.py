"""For plugin authors: report work the way fkit's own transactions do.

fkit's plugins use these and nothing private of fkit-core. A plugin that runs its own
statements on a user's session (fkit-locks takes locks, say) finds the session's manager
with :func:`owner_of`, emits its events on that manager's bus, raises driver errors as
fkit errors with :func:`raise_translated` (which also emits ``DatabaseErrorOccurred``,
so metrics count them), and counts work that holds a connection outside a transaction
with ``enter_work()`` / ``leave_work()``, so that ``close()`` drains it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fkit_core._manager import AsyncSessionManager
from fkit_core._owner import WorkOwner, engine_name_of, owner_of
from fkit_core._txevents import raise_translated

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

__all__ = ["WorkOwner", "engine_name_of", "manager_of", "owner_of", "raise_translated"]


def manager_of(
    source: AsyncSession | async_sessionmaker[AsyncSession] | AsyncSessionManager | Any,
) -> AsyncSessionManager | None:
    """The session manager behind a session, a sessionmaker or a manager; None if none.

    Args:
        source: What the user handed the plugin.
    """
    if isinstance(source, AsyncSessionManager):
        return source
    if not (hasattr(source, "sync_session") or hasattr(source, "kw")):
        return None
    owner = owner_of(source)
    return owner if isinstance(owner, AsyncSessionManager) else None
