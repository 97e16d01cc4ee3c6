"""SoftDeleteMixin: ``deleted_at``, and ORM queries that leave deleted rows out by default."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column, with_loader_criteria

from fkit_types._datetime import UTCDateTime

if TYPE_CHECKING:
    from sqlalchemy.orm import ORMExecuteState
    from sqlalchemy.sql.elements import ColumnElement

__all__ = ["INCLUDE_DELETED", "SoftDeleteMixin"]

INCLUDE_DELETED = "include_deleted"
"""The execution option that lets ORM queries see soft-deleted rows."""


class SoftDeleteMixin:
    """A ``deleted_at`` column, ``soft_delete()`` / ``restore()``, and filtered ORM reads.

    Every ORM ``SELECT`` made through a session (``select(Model)``, ``session.get()``,
    joins, eager and lazy relationship loads) leaves out rows whose ``deleted_at`` is set,
    through ``with_loader_criteria``. Ask for them with the execution option
    ``include_deleted=True``::

        select(Order).execution_options(include_deleted=True)
        await session.get(Order, order_id, execution_options={"include_deleted": True})

    Not filtered: Core statements on the table, ORM bulk ``update()``/``delete()``,
    ``from_statement()`` with your own SQL, and objects already in the session's
    identity map.
    """

    deleted_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), nullable=True, default=None, sort_order=100
    )

    @property
    def is_deleted(self) -> bool:
        """Whether the row is soft-deleted."""
        return self.deleted_at is not None

    def soft_delete(self, at: datetime | None = None) -> None:
        """Mark the row deleted; written by the next flush.

        Args:
            at: The deletion time (aware); now, in UTC, from the application's clock,
                when omitted, so the value is known before the flush.
        """
        self.deleted_at = at if at is not None else datetime.now(UTC)

    def restore(self) -> None:
        """Clear ``deleted_at``; written by the next flush."""
        self.deleted_at = None


def _not_deleted(cls: Any) -> ColumnElement[bool]:
    criterion: ColumnElement[bool] = cls.deleted_at.is_(None)
    return criterion


def _exclude_deleted(orm_state: ORMExecuteState) -> None:
    # Column loads refresh an object already in hand; filtering them would make a
    # soft-deleted object's expired attributes unloadable.
    if (
        orm_state.is_select
        and not orm_state.is_column_load
        and not orm_state.execution_options.get(INCLUDE_DELETED, False)
    ):
        orm_state.statement = orm_state.statement.options(
            with_loader_criteria(SoftDeleteMixin, _not_deleted, include_aliases=True)
        )


_installed = False


@event.listens_for(SoftDeleteMixin, "after_mapper_constructed", propagate=True)
def _install(mapper: Any, class_: type) -> None:
    # Only processes that map a soft-deletable model pay for the listener.
    global _installed
    if not _installed:
        event.listen(Session, "do_orm_execute", _exclude_deleted)
        _installed = True
