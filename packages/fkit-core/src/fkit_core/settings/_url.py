"""Parsing and rendering of PostgreSQL URLs, with the driver rules in one place.

Errors raised here are plain ``ValueError``: they run inside pydantic validators, which
attach the field's path; the settings base class turns them into ``ConfigurationError``.
No message here ever contains the URL, which may hold a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, get_args

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DRIVERS",
    "SCHEMES",
    "Driver",
    "ParsedURL",
    "build_url",
    "parse_url",
]

Driver = Literal["asyncpg", "psycopg"]
"""The async PostgreSQL drivers fkit supports."""

DRIVERS: Final[tuple[Driver, ...]] = get_args(Driver)

# Plain schemes take the driver from ConnectionSettings.driver (asyncpg by default).
_PLAIN_SCHEMES: Final = ("postgresql", "postgres")
SCHEMES: Final[tuple[str, ...]] = (
    *_PLAIN_SCHEMES,
    *(f"postgresql+{driver}" for driver in DRIVERS),
)
_SCHEME_CHOICES: Final = ", ".join(f"{scheme}://" for scheme in SCHEMES)
_PARSE_HINT: Final = (
    "expected postgresql://user:password@host:port/database, with special characters "
    "in the user name and password percent-encoded (for example '@' as %40, '/' as %2F)"
)


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """The parts of a URL that were present; ``None`` where the URL left a part out."""

    driver: Driver | None
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str | None
    query: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # The dataclass repr would print the password.
        return f"ParsedURL(driver={self.driver!r}, host={self.host!r}, database={self.database!r})"


def _driver_of(scheme: str) -> Driver | None:
    if scheme in _PLAIN_SCHEMES:
        return None
    for driver in DRIVERS:
        if scheme == f"postgresql+{driver}":
            return driver
    raise ValueError(f"scheme {scheme + '://'!r} is not supported; use one of {_SCHEME_CHOICES}")


def parse_url(raw: str) -> ParsedURL:
    """Parse a PostgreSQL URL into its parts, decoding percent-encoded user and password.

    Args:
        raw: The URL as a string.

    Returns:
        The parts present in the URL.

    Raises:
        ValueError: The URL is malformed or names an unsupported scheme or driver. The
            message never contains the URL.
    """
    try:
        url = make_url(raw.strip())
    except (ArgumentError, ValueError, TypeError):
        # SQLAlchemy's messages can quote the URL (and so the password): say it our way.
        raise ValueError(f"could not be parsed as a URL; {_PARSE_HINT}") from None
    driver = _driver_of(url.drivername)
    if "@" in (url.host or "") or "@" in (url.database or ""):
        # make_url ends the password at the first '@', so an unencoded '@' in a password
        # shifts the rest of it into the host or database instead of failing. (A
        # database really named with '@' can still be set through connection.database.)
        raise ValueError(f"has an '@' after the user:password@ part; {_PARSE_HINT}")
    query: dict[str, str] = {}
    for key, value in url.query.items():
        if not isinstance(value, str):
            raise ValueError(f"query parameter {key!r} is given more than once; give it once")
        query[key] = value
    return ParsedURL(
        driver=driver,
        user=url.username or None,
        password=url.password if url.password else None,
        host=url.host or None,
        port=url.port,
        database=url.database or None,
        query=query,
    )


def build_url(
    *,
    driver: Driver,
    user: str,
    password: str,
    host: str,
    port: int,
    database: str,
    query: Mapping[str, str],
) -> URL:
    """Build the SQLAlchemy URL for one server; SQLAlchemy percent-encodes when rendering.

    Args:
        driver: The async driver.
        user: The role name.
        password: The password; empty means none, so libpq-style fallbacks
            (``PGPASSWORD``, ``.pgpass``) still apply in the driver.
        host: Host name, address, or Unix socket directory.
        port: TCP port.
        database: Database name.
        query: Extra URL query parameters passed to the driver.

    Returns:
        A ``sqlalchemy.URL`` whose ``repr`` and ``str`` mask the password.
    """
    return URL.create(
        drivername=f"postgresql+{driver}",
        username=user,
        password=password or None,
        host=host,
        port=port,
        database=database,
        query=dict(query),
    )
