"""What every fkit column type shares: it knows its column, and it checks ORM assignments.

A type that knows its column can name it (``users.prefs``) in error messages. SQLAlchemy
tells a ``TypeDecorator`` which column it belongs to (it is a ``SchemaEventTarget``) and
copies the type whenever it copies the column (mixins, ``Table.to_metadata``), so each
column has its own instance. The column's name and table are read when an error is
built, because declarative mapping names the column only after creating it.

Assignments to mapped attributes (``user.role = "admin"``, ``User(role="admin")``) are
checked and converted at once through a ``set`` listener installed when the mapper is
configured, so a bad value fails at the line that assigned it rather than at a later
flush.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Column, event
from sqlalchemy.orm import Mapper
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from sqlalchemy.sql.base import SchemaEventTarget

__all__ = ["FkitColumnType"]

_T = TypeVar("_T")

_install_lock = threading.Lock()
_installed = False


class FkitColumnType(TypeDecorator[_T]):
    """Base of fkit's column types: knows its column and converts ORM assignments."""

    _fkit_column: Column[Any] | None = None
    _fkit_bound_by: int | None = None  # id() of the instance that joined the column
    _fkit_shared = False

    def _set_parent(self, parent: SchemaEventTarget, outer: bool = False, **kw: Any) -> None:
        super()._set_parent(parent, outer=outer, **kw)
        if isinstance(parent, Column):
            # A copy (made for a copied column) inherits its original's column; one
            # instance given to two columns cannot tell them apart, so it names neither.
            if self._fkit_bound_by == id(self) and self._fkit_column is not parent:
                self._fkit_shared = True
            self._fkit_column = parent
            self._fkit_bound_by = id(self)
            _install_mapper_listener()

    @property
    def column_name(self) -> str | None:
        """The column as ``table.column`` (``schema.table.column`` with a schema), or None.

        None also when one instance of the type was given to several columns.
        """
        column = self._fkit_column
        if column is None or column.name is None or self._fkit_shared:
            return None
        table = getattr(column, "table", None)
        return f"{table.fullname}.{column.name}" if table is not None else column.name

    def _where(self) -> str:
        name = self.column_name
        return f"column {name}" if name else f"a {self!r} column"

    def instrument_attribute(self, class_: type, key: str) -> None:
        """Called once the mapper owning an attribute of this type is configured.

        Installs the ``set`` listener that runs :meth:`coerce_assigned`; subclasses may
        add more (mutation tracking, for one).
        """
        event.listen(getattr(class_, key), "set", _on_set(self), retval=True, propagate=True)

    def coerce_assigned(self, value: Any) -> Any:
        """Check and convert a value assigned to a mapped attribute of this type.

        Returns:
            The value to store on the object.

        Raises:
            InvalidValueError: The value does not fit the column.
        """
        return value


def _on_set(column_type: FkitColumnType[Any]) -> Any:
    def check(target: object, value: Any, oldvalue: Any, initiator: object) -> Any:
        # SQL expressions (``obj.col = func.now()``) are the database's business.
        if (
            value is None
            or isinstance(value, ClauseElement)
            or hasattr(value, "__clause_element__")
        ):
            return value
        return column_type.coerce_assigned(value)

    return check


def _mapper_configured(mapper: Mapper[Any], class_: type) -> None:
    for prop in mapper.column_attrs:
        # Inherited attributes are handled, with propagation, by the mapper that owns them.
        if prop.parent is not mapper or len(prop.columns) != 1:
            continue
        column_type = prop.columns[0].type
        if isinstance(column_type, FkitColumnType):
            column_type.instrument_attribute(class_, prop.key)


def _install_mapper_listener() -> None:
    # Installed the first time an fkit type joins a column, not at import time.
    global _installed
    if _installed:
        return
    with _install_lock:
        if not _installed:
            event.listen(Mapper, "mapper_configured", _mapper_configured)
            _installed = True
