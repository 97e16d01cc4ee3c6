"""Database URLs for tests: plain form, driver form, masked form, and a reachability probe."""

from __future__ import annotations

import socket
import struct
from urllib.parse import parse_qs, urlsplit, urlunsplit

__all__ = ["DRIVERS", "mask_password", "plain_url", "probe", "with_driver"]

DRIVERS = ("asyncpg", "psycopg")
_SCHEMES = ("postgresql", "postgres")
# The SSLRequest message: every PostgreSQL server answers it with one byte, S or N.
_SSL_REQUEST = struct.pack("!II", 8, 80877103)


def _split_scheme(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in _SCHEMES:
        msg = f"expected a postgresql:// URL, got {mask_password(url)!r}"
        raise ValueError(msg)
    return scheme, rest


def plain_url(url: str) -> str:
    """Return ``url`` as ``postgresql://...``, dropping a ``+driver`` suffix.

    Raises:
        ValueError: ``url`` is not a PostgreSQL URL.
    """
    return "postgresql://" + _split_scheme(url)[1]


def with_driver(url: str, driver: str) -> str:
    """Return ``url`` with SQLAlchemy's driver suffix, e.g. ``postgresql+asyncpg://``."""
    return f"postgresql+{driver}://" + _split_scheme(url)[1]


def mask_password(url: str) -> str:
    """Return ``url`` with its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def probe(url: str, *, source: str = "the URL", hint: str = "", timeout: float = 5.0) -> None:
    """Check that a PostgreSQL server answers at ``url``'s host and port.

    Only the protocol's first exchange is made: no login, no driver needed.

    Args:
        url: The database URL; pass it masked (:func:`mask_password`), only its host
            and port are used.
        source: Where the URL came from, for the message (``"FKIT_TEST_DATABASE_URL"``).
        hint: What to do about it, appended to the message.
        timeout: Seconds to wait for the server.

    Raises:
        DatabaseUnavailableError: Nothing answers there, or it is not PostgreSQL.
    """
    # The report should end at the fixture with this message, not in socket internals.
    __tracebackhide__ = True
    # Imported here: the error derives from fkit-core's, and this module must stay cheap
    # to import (the pytest plugin reads DRIVERS in every run).
    from fkit_testing._errors import DatabaseUnavailableError

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or query.get("host", ["localhost"])[0]
    port = parts.port or int(query.get("port", ["5432"])[0])
    shown = mask_password(url)
    try:
        if host.startswith("/"):
            address: str | tuple[str, int] = f"{host}/.s.PGSQL.{port}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            address = (host, port)
            sock = socket.create_connection(address, timeout=timeout)
        with sock:
            sock.settimeout(timeout)
            if isinstance(address, str):
                sock.connect(address)
            sock.sendall(_SSL_REQUEST)
            answer = sock.recv(1)
    except OSError as exc:
        msg = f"{source} is {shown}, but no PostgreSQL server answers there"
        msg += f" ({type(exc).__name__}: {exc}). {hint}"
        # The message carries the socket error already; its traceback would only add noise.
        raise DatabaseUnavailableError(msg.strip()) from None
    if answer not in (b"S", b"N"):
        msg = f"{source} is {shown}, but the server there does not speak the PostgreSQL"
        msg += f" protocol (it answered {answer!r}). {hint}"
        raise DatabaseUnavailableError(msg.strip())
