"""Recording an exception on a span without parameter values or secrets.

OpenTelemetry's ``span.record_exception`` writes ``str(exc)`` and the whole chained
traceback. For database errors that leaks data: SQLAlchemy's message carries
``[parameters: ...]``, PostgreSQL's DETAIL line carries key values
(``Key (email)=(a@b.c) already exists``), and even a primary message can quote a value
(``invalid input syntax for type integer: "abc"``). So a database error is described by
its class, SQLSTATE and constraint name only, and the stack trace is the frames of the
outermost exception, without the messages of the exceptions chained to it.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from fkit_core import sqlstate_of, translate_error
from fkit_core.errors import DatabaseError, FkitError
from fkit_otel._semconv import ERROR_TYPE, SQLSTATE

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["describe", "record_error"]


def _qualified(cls: type[BaseException]) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def describe(exc: BaseException) -> tuple[str, str, str | None]:
    """``(type, message, sqlstate)`` of ``exc``, with database errors reduced to safe facts.

    The type of a driver or SQLAlchemy error is the fkit error it translates to (what the
    caller sees raised).
    """
    translated: BaseException | None = exc if isinstance(exc, FkitError) else None
    if translated is None and isinstance(exc, (SQLAlchemyError, OSError)):
        translated = translate_error(exc)
    sqlstate = sqlstate_of(exc)
    is_database = (
        isinstance(exc, (SQLAlchemyError, DatabaseError))
        or isinstance(translated, DatabaseError)
        or sqlstate is not None
    )
    shown = translated if translated is not None else exc
    if not is_database:
        return _qualified(type(shown)), str(exc), None
    parts = []
    if sqlstate:
        parts.append(f"SQLSTATE {sqlstate}")
    constraint = getattr(shown, "constraint_name", None)
    if isinstance(constraint, str) and constraint:
        parts.append(f"constraint {constraint}")
    return _qualified(type(shown)), ", ".join(parts), sqlstate


def record_error(span: Span, exc: BaseException) -> str:
    """Add an ``exception`` event and ``error.type`` to ``span``; returns the description."""
    type_name, message, sqlstate = describe(exc)
    frames = "".join(traceback.format_tb(exc.__traceback__)) if exc.__traceback__ else ""
    span.add_event(
        "exception",
        {
            "exception.type": type_name,
            "exception.message": message,
            "exception.stacktrace": f"Traceback (most recent call last):\n{frames}"
            f"{type_name}: {message}\n",
        },
    )
    span.set_attribute(ERROR_TYPE, type_name)
    if sqlstate:
        span.set_attribute(SQLSTATE, sqlstate)
    short = type_name.rsplit(".", 1)[-1]
    return f"{short}: {message}" if message else short
