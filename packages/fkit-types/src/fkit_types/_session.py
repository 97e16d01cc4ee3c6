"""TypesSession: the SQLAlchemy session class the ``types`` plugin gives a manager's sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session
from sqlalchemy.orm import exc as orm_exc

from fkit_types._errors import StaleDataError
from fkit_types._tracking import check_in_place_changes

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TypesSession"]


class TypesSession(Session):
    """A ``Session`` that raises fkit's :class:`StaleDataError` and sees in-place changes on flush.

    - A version-check failure (:class:`VersionedMixin`) raises
      :class:`fkit_types.StaleDataError`, an ``FkitError`` that is also SQLAlchemy's
      ``StaleDataError``, with SQLAlchemy's error chained.
    - ``flush()`` first looks for in-place changes of ``PydanticJSONB(mutable=True)``
      attributes, so an explicit flush writes them even when nothing else is pending
      (SQLAlchemy skips the flush of a session it thinks is clean before any event).

    The ``types`` plugin makes it the ``sync_session_class`` of the manager's primary
    sessionmaker; elsewhere pass it yourself:
    ``async_sessionmaker(engine, sync_session_class=TypesSession)``.
    """

    def flush(self, objects: Sequence[Any] | None = None) -> None:
        """Flush, after marking in-place changes; a stale version raises fkit's error."""
        check_in_place_changes(self)
        try:
            if objects is None:
                super().flush()
            else:  # pragma: no cover - deprecated in SQLAlchemy 2.1; passed through as is
                super().flush(objects)
        except orm_exc.StaleDataError as exc:
            if isinstance(exc, StaleDataError):
                raise
            raise StaleDataError(
                f"{exc} Another transaction changed or deleted the row after this session "
                "loaded it (optimistic version check). Reload the object and apply the "
                "change again."
            ) from exc
