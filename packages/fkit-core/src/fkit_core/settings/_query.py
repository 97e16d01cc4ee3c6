"""Per-session server settings and statement caches: :class:`QuerySettings`."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from fkit_core.settings._base import SettingsModel

__all__ = ["QuerySettings"]

# PostgreSQL stores these timeouts as int milliseconds; larger values fail at connect.
_MAX_TIMEOUT_SECONDS: Final = 2_147_483_647 / 1000
# PostgreSQL silently truncates names to NAMEDATALEN - 1 bytes.
_MAX_NAME_BYTES: Final = 63

Timeout = Annotated[float | None, Field(ge=0, le=_MAX_TIMEOUT_SECONDS)]


class QuerySettings(SettingsModel):
    """Server settings applied to every session, and the prepared-statement caches.

    Timeouts are in seconds (fractions allowed, sent as whole milliseconds); ``0``
    disables the timeout, ``None`` leaves the server's default.

    Attributes:
        statement_timeout: Cancel any statement running longer than this.
        lock_timeout: Give up waiting for a lock after this long.
        idle_in_transaction_session_timeout: End sessions idle inside a transaction
            for longer than this.
        statement_cache_size: asyncpg's own prepared-statement cache size (asyncpg only;
            ``0`` disables it).
        prepared_statement_cache_size: The SQLAlchemy asyncpg adapter's cache size
            (``0`` disables it). With psycopg only ``0`` is meaningful: it turns off
            server-side prepared statements.
        jit: Turn PostgreSQL's JIT compiler on or off; accepts booleans and
            ``"on"``/``"off"``.
        application_name: The name shown in ``pg_stat_activity``: printable ASCII,
            at most 63 characters.
        search_path: Schemas to search, as a list or a comma-separated string
            (``"app, public"``). Names are taken literally (case-sensitive) and
            quoted when sent; ``$user`` means the schema named like the role.
    """

    statement_timeout: Timeout = None
    lock_timeout: Timeout = None
    idle_in_transaction_session_timeout: Timeout = None
    statement_cache_size: int | None = Field(default=None, ge=0)
    prepared_statement_cache_size: int | None = Field(default=None, ge=0)
    jit: bool | None = None
    application_name: str | None = Field(default=None, max_length=_MAX_NAME_BYTES)
    # NoDecode: from the environment a comma-separated string is the natural form, not JSON.
    search_path: Annotated[list[str] | None, NoDecode] = None

    @field_validator("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
    @classmethod
    def _whole_milliseconds(cls, value: float | None) -> float | None:
        # A positive value below 1 ms would round to 0, which PostgreSQL reads as "off".
        if value is not None and 0 < value < 0.001:
            raise ValueError("must be 0 (disabled) or at least 0.001 seconds (1 ms)")
        return value

    @field_validator("application_name")
    @classmethod
    def _printable_ascii(cls, value: str | None) -> str | None:
        # The server replaces anything else with '?', so the name would not match.
        if value is not None and not all(" " <= char <= "~" for char in value):
            raise ValueError("must be printable ASCII characters only")
        return value

    @field_validator("search_path", mode="before")
    @classmethod
    def _split_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",")]
        return value

    @field_validator("search_path")
    @classmethod
    def _valid_schema_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("is empty; name at least one schema, or use None for the default")
        for position, name in enumerate(value):
            if not name.strip():
                raise ValueError(
                    f"entry {position} is empty; give schema names separated by commas"
                )
            if not name.isprintable():
                raise ValueError(f"entry {position} contains control characters")
            if len(name.encode()) > _MAX_NAME_BYTES:
                raise ValueError(
                    f"entry {position} is longer than {_MAX_NAME_BYTES} bytes, which PostgreSQL "
                    "would silently truncate"
                )
        return value
