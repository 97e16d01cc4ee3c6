"""Where the server is and who connects: :class:`ConnectionSettings`."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from fkit_core.settings._base import SettingsModel
from fkit_core.settings._url import Driver

__all__ = ["ConnectionSettings"]


class ConnectionSettings(SettingsModel):
    """The server to connect to and the credentials to use.

    The password is a ``SecretStr``: it is masked in ``repr()``, ``str()`` and
    ``model_dump_json()``; call ``password.get_secret_value()`` to read it.

    Attributes:
        driver: The async driver SQLAlchemy uses: ``"asyncpg"`` or ``"psycopg"``.
        host: Host name, IP address, or Unix socket directory.
        port: TCP port, 1 to 65535.
        user: The role to log in as.
        password: The role's password; empty means none (``.pgpass`` and
            ``PGPASSWORD`` then apply in the driver).
        database: The database name.
        query: Extra URL query parameters for the driver, such as ``sslmode``.
    """

    driver: Driver = "asyncpg"
    host: str = Field(default="localhost", min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    user: str = Field(default="postgres", min_length=1)
    password: SecretStr = SecretStr("")
    database: str = Field(default="postgres", min_length=1)
    query: dict[str, str] = Field(default_factory=dict)

    @field_validator("query")
    @classmethod
    def _no_password_in_query(cls, value: dict[str, str]) -> dict[str, str]:
        # The query dict is not secret (it shows in repr); a password there would leak.
        if any(key.lower() == "password" for key in value):
            raise ValueError(
                "must not carry a password; set connection.password or put it in the URL's "
                "user:password@ part, where it is kept secret"
            )
        return value
