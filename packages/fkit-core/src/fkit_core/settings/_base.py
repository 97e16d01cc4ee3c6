"""The shared base of every settings model: validation errors become ``ConfigurationError``.

pydantic's ``ValidationError`` prints each bad input value. Settings hold passwords, so
fkit replaces it with a :class:`~fkit_core.errors.ConfigurationError` that names each
bad field by its dotted path and keeps pydantic's message, but never the input.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from fkit_core.errors import ConfigurationError

__all__ = ["SettingsModel", "configuration_error_from"]

_VALUE_ERROR_PREFIX = "Value error, "


def configuration_error_from(model_name: str, exc: ValidationError) -> ConfigurationError:
    """Translate a pydantic ``ValidationError`` into a message that holds no input values.

    Args:
        model_name: The class being validated, used as the message's subject.
        exc: The error pydantic raised.

    Returns:
        A ``ConfigurationError`` listing each failing field as ``dotted.path: message``.
    """
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        path = ".".join(str(part) for part in error["loc"])
        # fkit's own validators raise ValueError; pydantic's prefix for those is noise.
        message = error["msg"].removeprefix(_VALUE_ERROR_PREFIX)
        if error["type"] in ("frozen_instance", "frozen_field"):
            # Changing one field would skip the cross-field checks done at validation.
            message = "settings cannot be changed once validated; build a new settings object"
        lines.append(f"  {path}: {message}" if path else f"  {message}")
    count = len(lines)
    plural = "" if count == 1 else "s"
    return ConfigurationError(f"invalid {model_name} ({count} error{plural}):\n" + "\n".join(lines))


class SettingsModel(BaseModel):
    """Base of fkit's settings sub-models: immutable, no unknown keys, safe errors.

    Every way of validating (the constructor, ``model_validate``, ``model_validate_json``,
    ``model_validate_strings``) raises :class:`~fkit_core.errors.ConfigurationError`
    instead of pydantic's ``ValidationError``.
    """

    # Frozen: the cross-field checks run once at validation; assignment would bypass them.
    # hide_input_in_errors: defence in depth for any ValidationError that escapes the
    # translation below (a TypeAdapter over these models, for example).
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            error = configuration_error_from(type(self).__name__, exc)
        else:
            return
        # Raised outside the except block so the ValidationError (which holds the
        # inputs, passwords included) is not kept as __context__.
        raise error

    # Marks the override as pydantic's own __init__, so validating a parent model
    # validates this one inside pydantic-core (errors keep their dotted path, such as
    # pool.size) instead of calling __init__ and nesting a ConfigurationError.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        # Assigning to a frozen model fails with a ValidationError holding the value.
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            error = configuration_error_from(type(self).__name__, exc)
        else:
            return
        raise error

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate ``obj`` like pydantic does, raising ``ConfigurationError`` on failure."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            error = configuration_error_from(cls.__name__, exc)
        raise error

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate JSON like pydantic does, raising ``ConfigurationError`` on failure."""
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            error = configuration_error_from(cls.__name__, exc)
        raise error

    @classmethod
    def model_validate_strings(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate string data like pydantic does, raising ``ConfigurationError`` on failure."""
        try:
            return super().model_validate_strings(obj, *args, **kwargs)
        except ValidationError as exc:
            error = configuration_error_from(cls.__name__, exc)
        raise error
