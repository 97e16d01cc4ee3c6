"""The whole database configuration, from code or ``FKIT_DB_*`` environment variables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError
from sqlalchemy.engine import URL

from fkit_core.errors import ConfigurationError
from fkit_core.settings._base import SettingsModel
from fkit_core.settings._connection import ConnectionSettings
from fkit_core.settings._kwargs import engine_kwargs_for, startup_settings_for
from fkit_core.settings._migrations import MigrationSettings
from fkit_core.settings._pool import PoolSettings
from fkit_core.settings._query import QuerySettings
from fkit_core.settings._url import ParsedURL, build_url, parse_url

if TYPE_CHECKING:
    from fkit_core.settings._url import Driver

__all__ = ["BasePostgresConfig"]

_URL_PARTS: Final = ("user", "password", "host", "port", "database", "query")


def _connection_data(parsed: ParsedURL, driver: Driver) -> dict[str, Any]:
    data: dict[str, Any] = {"driver": driver, "query": parsed.query}
    for part in ("user", "password", "host", "port", "database"):
        value = getattr(parsed, part)
        if value is not None:
            data[part] = value
    return data


def _check_url(value: SecretStr) -> SecretStr:
    parsed = parse_url(value.get_secret_value())
    try:
        # The driver does not matter here: this only checks the URL's parts.
        ConnectionSettings.__pydantic_validator__.validate_python(
            _connection_data(parsed, "asyncpg")
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"the URL's {'.'.join(map(str, error['loc']))}: {error['msg']}"
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        )
    else:
        return value
    # Raised outside the except block: the ValidationError holds the inputs.
    raise ValueError(problems)


def _render_url_object(value: Any) -> Any:
    # A sqlalchemy.URL is accepted too; rendered with its password, it parses back equal.
    if isinstance(value, URL):
        return value.render_as_string(hide_password=False)
    return value


PostgresURL = Annotated[SecretStr, BeforeValidator(_render_url_object), AfterValidator(_check_url)]


class BasePostgresConfig(BaseSettings, SettingsModel):
    """Everything fkit needs to reach PostgreSQL, read from arguments and the environment.

    Environment variables are prefixed ``FKIT_DB_`` and nest with ``__``:
    ``FKIT_DB_URL``, ``FKIT_DB_POOL__SIZE=20``, ``FKIT_DB_CONNECTION__HOST=db``,
    ``FKIT_DB_QUERY__SEARCH_PATH=app,public``, ``FKIT_DB_REPLICA_URLS='["postgresql://..."]'``.
    Unprefixed variables are never read. Arguments win over the environment.

    Any invalid value raises :class:`~fkit_core.errors.ConfigurationError` naming each
    field by its dotted path; passwords never appear in messages or ``repr()``.

    Attributes:
        url: A whole URL (``postgresql://``, ``postgres://``, ``postgresql+asyncpg://``,
            ``postgresql+psycopg://``), parsed into ``connection``. It may be combined with
            ``connection.driver`` (which picks the driver for a plain ``postgresql://``)
            but not with other ``connection`` fields that disagree with it.
        connection: Server and credentials.
        pool: Connection pool settings.
        query: Server settings and statement caches.
        pgbouncer: Connect through pgbouncer in transaction pooling mode: prepared
            statements off, and server settings other than ``application_name`` applied
            per transaction with ``set_config(..., true)`` instead of at startup.
        jit: Shortcut for ``query.jit`` that overrides it; accepts ``"on"``/``"off"``.
        replica_urls: Read replica URLs, validated like ``url``; a plain scheme takes the
            primary's driver, an explicit one must match it. Missing parts default like
            ``connection`` (they are not copied from the primary).
        echo: Log every SQL statement (SQLAlchemy's ``echo``).
        check_on_start: Run ``SELECT 1`` when the session manager starts.
        migrations: Alembic migrations run at start (off by default; needs the
            ``fkit-core[alembic]`` extra), e.g. ``FKIT_DB_MIGRATIONS__RUN_ON_START=true``.
    """

    model_config = SettingsConfigDict(
        env_prefix="FKIT_DB_",
        env_nested_delimiter="__",
        # Empty variables (common in compose files) mean "not set", not "invalid".
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
    )

    url: PostgresURL | None = None
    connection: ConnectionSettings = Field(default_factory=ConnectionSettings)
    pool: PoolSettings = Field(default_factory=PoolSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    pgbouncer: bool = False
    jit: bool | None = None
    replica_urls: list[PostgresURL] = Field(default_factory=list)
    echo: bool = False
    check_on_start: bool = True
    migrations: MigrationSettings = Field(default_factory=MigrationSettings)

    _replicas: list[ConnectionSettings] = PrivateAttr(default_factory=list)

    def __init__(self, /, **values: Any) -> None:
        if "connection" in values and "url" not in values:
            # Connection fields given in code win over FKIT_DB_URL in the environment,
            # as every argument wins over the environment.
            values["url"] = None
        try:
            super().__init__(**values)
        except SettingsError as exc:
            # Says which field and source failed to decode; never the value.
            error = ConfigurationError(
                f"invalid {type(self).__name__}: {exc}; environment values for list and "
                "model fields are JSON (FKIT_DB_REPLICA_URLS='[\"postgresql://...\"]'), "
                "or use FKIT_DB_<FIELD>__<SUBFIELD> variables for model fields"
            )
        else:
            return
        raise error

    @classmethod
    def from_url(cls, url: str | URL, **kwargs: Any) -> Self:
        """Build a config from a URL, with any other fields as keyword arguments.

        Args:
            url: A PostgreSQL URL, as a string or a ``sqlalchemy.URL``; see the ``url``
                attribute for accepted schemes.
            **kwargs: Other fields, such as ``pool=PoolSettings(size=20)``.

        Returns:
            The validated config (environment variables still fill unset fields).

        Raises:
            ConfigurationError: The URL or another value is invalid.
        """
        return cls(url=url, **kwargs)

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        problems: list[str] = []
        if self.url is not None:
            self._apply_url(parse_url(self.url.get_secret_value()), problems)
        driver = self.connection.driver
        replicas: list[ConnectionSettings] = []
        for index, replica in enumerate(self.replica_urls):
            parsed = parse_url(replica.get_secret_value())
            if parsed.driver not in (None, driver):
                problems.append(
                    f"replica_urls.{index}: names driver {parsed.driver}, but the primary uses "
                    f"{driver}; every engine uses one driver, so use postgresql:// or "
                    f"postgresql+{driver}://"
                )
            replicas.append(ConnectionSettings(**_connection_data(parsed, driver)))
        self._replicas = replicas
        self._check_caches(problems)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _apply_url(self, parsed: ParsedURL, problems: list[str]) -> None:
        given = self.connection.model_fields_set
        if (
            parsed.driver is not None
            and "driver" in given
            and parsed.driver != self.connection.driver
        ):
            problems.append(
                f"url names driver {parsed.driver} but connection.driver is "
                f"{self.connection.driver}; use postgresql:// to let connection.driver choose"
            )
        merged = ConnectionSettings(
            **_connection_data(parsed, parsed.driver or self.connection.driver)
        )
        clashing = [
            f"connection.{part}"
            for part in _URL_PARTS
            if part in given and getattr(self.connection, part) != getattr(merged, part)
        ]
        if clashing:
            problems.append(
                f"url and {', '.join(clashing)} are both given and disagree; put everything "
                "in the URL, or use the connection fields without a URL"
            )
        # The model is frozen; this is its own validation step filling in the parsed URL.
        object.__setattr__(self, "connection", merged)

    def _check_caches(self, problems: list[str]) -> None:
        query = self.query
        caches = {
            "query.statement_cache_size": query.statement_cache_size,
            "query.prepared_statement_cache_size": query.prepared_statement_cache_size,
        }
        for name, size in caches.items():
            if size is None or size == 0:
                continue
            if self.pgbouncer:
                problems.append(
                    f"{name} is {size} with pgbouncer=True; pgbouncer's transaction pooling "
                    "needs prepared statement caches off: leave it unset or set 0"
                )
            elif self.connection.driver == "psycopg":
                problems.append(
                    f"{name} configures asyncpg and psycopg has no such cache; leave it unset, "
                    "or set 0 to turn off psycopg's prepared statements"
                )
        if self.connection.driver == "psycopg" and "options" in self.connection.query:
            startup = startup_settings_for(self)
            startup.pop("application_name", None)
            if startup:
                problems.append(
                    "connection.query has 'options', which would be replaced by the server "
                    f"settings in query ({', '.join(startup)}); set them in one place"
                )

    def primary_url(self) -> URL:
        """The SQLAlchemy URL of the primary; its ``repr`` and ``str`` mask the password."""
        return self._url_of(self.connection)

    def replica_url(self, index: int) -> URL:
        """The SQLAlchemy URL of one replica.

        Args:
            index: Position in ``replica_urls``.

        Returns:
            The replica's URL, with the primary's driver.

        Raises:
            IndexError: There is no replica at ``index``.
        """
        if not 0 <= index < len(self._replicas):
            raise IndexError(
                f"no replica at index {index}; {len(self._replicas)} replica URL(s) configured"
            )
        return self._url_of(self._replicas[index])

    def replica_sqlalchemy_urls(self) -> list[URL]:
        """The SQLAlchemy URLs of all replicas, in ``replica_urls`` order."""
        return [self._url_of(replica) for replica in self._replicas]

    def masked_url(self) -> str:
        """The primary's URL as a string with the password shown as ``***``, safe to log."""
        return self.primary_url().render_as_string(hide_password=True)

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``create_async_engine``, correct for the configured driver.

        Returns:
            A fresh dict (safe to modify): ``poolclass`` and the pool arguments that
            class accepts, ``pool_recycle``, ``pool_pre_ping``, ``echo``, and
            ``connect_args`` carrying the server settings and statement-cache settings.
            Pass it with a URL to :func:`fkit_core._engine.build_engine`, which also
            applies per-transaction settings in pgbouncer mode.
        """
        return engine_kwargs_for(self)

    def _url_of(self, connection: ConnectionSettings) -> URL:
        return build_url(
            driver=self.connection.driver,
            user=connection.user,
            password=connection.password.get_secret_value(),
            host=connection.host,
            port=connection.port,
            database=connection.database,
            query=connection.query,
        )
