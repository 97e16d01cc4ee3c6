"""Rendering fkit's column types in Alembic migrations as the database types they are."""

from __future__ import annotations

from typing import Any, Literal

from fkit_types._datetime import UTCDateTime
from fkit_types._enum import UnConstrainedEnum
from fkit_types._json import PydanticJSONB

__all__ = ["alembic_render_item"]


def alembic_render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Alembic ``render_item`` hook: write fkit's types as plain SQLAlchemy types.

    A migration must keep working after the application's models change, so it should
    not import them: ``PydanticJSONB(Preferences)`` is written as
    ``postgresql.JSONB(astext_type=sa.Text())``, ``UnConstrainedEnum(Role)`` as
    ``sa.Text()`` and ``UTCDateTime()`` as ``sa.DateTime(timezone=True)``. Pass it in
    ``env.py``: ``context.configure(..., render_item=alembic_render_item)``.

    Args:
        type_: What Alembic renders (``"type"``, ``"column"``, ...).
        obj: The object to render.
        autogen_context: Alembic's ``AutogenContext`` (its ``imports`` are extended).

    Returns:
        The Python source for the type, or False to let Alembic render it.
    """
    if type_ != "type":
        return False
    if isinstance(obj, PydanticJSONB):
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return "postgresql.JSONB(astext_type=sa.Text())"
    if isinstance(obj, UnConstrainedEnum):
        return "sa.Text()"
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False
