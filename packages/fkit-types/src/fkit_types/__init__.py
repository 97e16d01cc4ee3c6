"""fkit-types: column types, a declarative base and model mixins for PostgreSQL.

Public names are re-exported here; the implementation lives in private modules.
"""

from fkit_types._alembic import alembic_render_item
from fkit_types._base import NAMING_CONVENTION, BaseTable
from fkit_types._datetime import UTCDateTime
from fkit_types._enum import UnConstrainedEnum
from fkit_types._errors import (
    InvalidStoredValueError,
    InvalidValueError,
    NaiveDatetimeError,
    StaleDataError,
)
from fkit_types._json import PydanticJSONB, json_dumps
from fkit_types._mixins import (
    IdentityPrimaryKeyMixin,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
    VersionedMixin,
    mixin_mapper_args,
)
from fkit_types._plugin import TypesPlugin
from fkit_types._session import TypesSession
from fkit_types._soft_delete import INCLUDE_DELETED, SoftDeleteMixin
from fkit_types._uuid import uuid7
from fkit_types._version import VERSION as __version__

__all__ = [
    "INCLUDE_DELETED",
    "NAMING_CONVENTION",
    "BaseTable",
    "IdentityPrimaryKeyMixin",
    "InvalidStoredValueError",
    "InvalidValueError",
    "NaiveDatetimeError",
    "PydanticJSONB",
    "SoftDeleteMixin",
    "StaleDataError",
    "TimestampMixin",
    "TypesPlugin",
    "TypesSession",
    "UTCDateTime",
    "UUIDPrimaryKeyMixin",
    "UnConstrainedEnum",
    "VersionedMixin",
    "__version__",
    "alembic_render_item",
    "json_dumps",
    "mixin_mapper_args",
    "uuid7",
]
