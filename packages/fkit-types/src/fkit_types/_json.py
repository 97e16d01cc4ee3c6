"""JSON: the engine serializer, and :class:`PydanticJSONB` for JSONB holding a pydantic type."""

from __future__ import annotations

import types
import typing
from functools import cached_property
from typing import TYPE_CHECKING, Any, Self

import pydantic_core
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Text, cast, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator

from fkit_types._column import FkitColumnType
from fkit_types._errors import InvalidStoredValueError, InvalidValueError

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.sql.elements import ColumnElement
    from sqlalchemy.sql.operators import OperatorType
    from sqlalchemy.types import TypeEngine

__all__ = ["PydanticJSONB", "json_dumps"]

_MAX_REPORTED_ERRORS = 5


def json_dumps(value: Any) -> str:
    """Serialize a value to JSON text, understanding what pydantic understands.

    Pydantic models and dataclasses, datetimes (ISO 8601), UUIDs, Decimals (as strings,
    so no digit is lost), enums (their values), sets and tuples (arrays) and bytes
    (UTF-8 text). It is the ``json_serializer`` the ``types`` plugin gives every engine,
    so plain ``JSON``/``JSONB`` columns accept such values too.

    Args:
        value: What to serialize.

    Returns:
        Compact JSON text.

    Raises:
        pydantic_core.PydanticSerializationError: The value holds something JSON cannot express.
    """
    return pydantic_core.to_json(value).decode()


def describe_type(type_: Any) -> str:
    """A short readable name for a type: ``Preferences``, ``list[Item]``, ``Item | None``."""
    origin = typing.get_origin(type_)
    if origin is None:
        if type_ is None or type_ is type(None):
            return "None"
        return type_.__name__ if isinstance(type_, type) else repr(type_)
    args = typing.get_args(type_)
    if origin is typing.Annotated:
        return describe_type(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe_type(arg) for arg in args)
    name = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
    return f"{name}[{', '.join(describe_type(arg) for arg in args)}]"


def summarize(exc: ValidationError) -> str:
    """Pydantic's errors as ``loc: message`` pairs, without the input values.

    Inputs stay out of the message: stored documents may hold data that must not
    reach a log line.
    """
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = [
        f"{'.'.join(str(p) for p in error['loc']) or '(root)'}: {error['msg']}"
        for error in errors[:_MAX_REPORTED_ERRORS]
    ]
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_REPORTED_ERRORS} more")
    return "; ".join(parts)


class _Comparator(TypeDecorator.Comparator[Any], JSONB.Comparator[Any]):
    """JSONB operators; an element (``col["key"]``) is plain JSONB, not the pydantic type."""

    def _setup_getitem(self, index: Any) -> Any:
        operator, index, _ = super()._setup_getitem(index)  # type: ignore[no-untyped-call]
        return operator, index, JSONB()


class PydanticJSONB(FkitColumnType[Any]):
    """A JSONB column holding a pydantic model, a ``list[Model]``, or any type pydantic validates.

    Values are validated when assigned to a mapped attribute (a dict becomes the model),
    checked again when written (what is stored must read back), and validated when read.
    A stored document that no longer validates raises :class:`InvalidStoredValueError`
    naming the column and the type; it never comes back as a plain dict. Python ``None``
    is SQL ``NULL``.

    JSON operators work in ``where`` clauses: ``User.prefs["theme"].astext == "dark"``,
    ``User.prefs[("address", "city")].astext``, ``User.prefs.contains({"theme": "dark"})``,
    ``User.prefs.has_key("theme")``.

    Args:
        type_: What the column holds: a ``BaseModel`` subclass, ``list[Model]``, or any
            type a pydantic ``TypeAdapter`` accepts.
        mutable: Track changes made in place (``user.prefs.theme = "x"``, nested models,
            list appends) so they are written by the next flush or commit; see the docs
            for how and what it costs.
    """

    impl = JSONB(none_as_null=True)
    cache_ok = True
    comparator_factory = _Comparator

    def __init__(self, type_: Any, *, mutable: bool = False) -> None:
        super().__init__()
        self.type_ = type_
        self.mutable = mutable

    def __new__(cls, type_: Any = None, *args: Any, **kwargs: Any) -> Self:
        # SQLAlchemy's statement cache keys on the type's arguments, and reads cache_ok
        # from the class: an unhashable type (Annotated metadata, say) gets a class that
        # opts out of caching, which only costs the caching.
        if cls is PydanticJSONB and not _hashable(type_):
            return super().__new__(_UncachedPydanticJSONB)  # type: ignore[return-value]
        return super().__new__(cls)

    def __repr__(self) -> str:
        extra = ", mutable=True" if self.mutable else ""
        return f"PydanticJSONB({describe_type(self.type_)}{extra})"

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        """The pydantic ``TypeAdapter`` for ``type_``, built on first use."""
        return TypeAdapter(self.type_)

    @property
    def python_type(self) -> type[Any]:
        """The model class, or ``object`` for types that are not classes."""
        origin = typing.get_origin(self.type_)
        if isinstance(self.type_, type) and origin is None:
            return self.type_
        return origin if isinstance(origin, type) else object

    # -- values -----------------------------------------------------------------------

    def _invalid(self, exc: Exception) -> InvalidValueError:
        detail = summarize(exc) if isinstance(exc, ValidationError) else str(exc)
        return InvalidValueError(
            f"{self._where()} expects {describe_type(self.type_)}: {detail}",
            column=self.column_name,
        )

    def coerce_assigned(self, value: Any) -> Any:
        """Validate an assigned value into the column's type (a dict becomes the model)."""
        try:
            return self.adapter.validate_python(value)
        except ValidationError as exc:
            raise self._invalid(exc) from exc

    def to_json_text(self, value: Any) -> bytes:
        """Validate ``value`` and serialize it as it will be stored.

        Raises:
            InvalidValueError: It does not validate, holds a value of the wrong type
                (changed in place), or would not validate when read back.
        """
        adapter = self.adapter
        try:
            validated = adapter.validate_python(value)
            text = adapter.dump_json(validated, by_alias=True, round_trip=True, warnings="error")
            # An object changed in place skipped validation; what is stored must read back.
            adapter.validate_json(text)
        except (ValidationError, pydantic_core.PydanticSerializationError) as exc:
            raise self._invalid(exc) from exc
        return text

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        # The JSONB type below serializes again with the engine's serializer; plain JSON
        # data round-trips through any serializer unchanged.
        return pydantic_core.from_json(self.to_json_text(value))

    def column_expression(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        # Selected as text, the document is validated by pydantic's JSON parser: exactly
        # the rules pydantic applies to JSON (strict models, bytes, durations), one parse,
        # and independent of the engine's json_deserializer.
        return type_coerce(cast(column, Text), self)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        try:
            if isinstance(value, str | bytes):
                return self.adapter.validate_json(value)
            return self.adapter.validate_python(value)  # selected without the text cast
        except ValidationError as exc:
            name = describe_type(self.type_)
            raise InvalidStoredValueError(
                f"{self._where()} holds a document that does not validate as {name}: "
                f"{summarize(exc)}. Migrate the stored rows, or let the model accept them "
                "(a default for a new field, a wider type).",
                column=self.column_name,
                expected=name,
            ) from exc

    def coerce_compared_value(self, op: OperatorType | None, value: Any) -> TypeEngine[Any]:
        # Equality compares whole documents of this type; every other JSON operator
        # (contains, has_key, paths) takes plain JSON or text.
        if op in (operators.eq, operators.ne):
            return self
        return self.impl_instance.coerce_compared_value(op, value)

    # -- in-place change tracking -----------------------------------------------------

    def instrument_attribute(self, class_: type, key: str) -> None:
        """Install the assignment check and, when ``mutable``, in-place change tracking."""
        super().instrument_attribute(class_, key)
        if self.mutable:
            from fkit_types._tracking import track_attribute

            track_attribute(class_, key, self)

    def snapshot(self, value: Any) -> bytes | None:
        """The serialized form used to detect in-place changes, or None if it cannot be made."""
        if value is None:
            return b"null"
        try:
            return self.adapter.dump_json(value, by_alias=True, round_trip=True, warnings=False)
        except pydantic_core.PydanticSerializationError:
            return None


class _UncachedPydanticJSONB(PydanticJSONB):
    """A PydanticJSONB whose type cannot be part of a statement cache key."""

    cache_ok = False


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
