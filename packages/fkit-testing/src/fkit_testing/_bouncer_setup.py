"""What a throwaway pgbouncer needs: its binary, its target, its configuration files."""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from fkit_testing._cluster import HOST
from fkit_testing._errors import LauncherError
from fkit_testing._launcher import PostgresServer
from fkit_testing._urls import plain_url

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fkit_testing._osuser import OsUser

__all__ = [
    "ENV_PGBOUNCER",
    "POOL_MODES",
    "PoolMode",
    "Target",
    "answers",
    "find_pgbouncer",
    "read_pid",
    "render_config",
    "write_user_list",
]

ENV_PGBOUNCER = "FKIT_TEST_PGBOUNCER"
PoolMode = Literal["session", "transaction", "statement"]
POOL_MODES: tuple[PoolMode, ...] = ("session", "transaction", "statement")
# Debian and most distributions install pgbouncer into an sbin directory, which is not
# on an unprivileged user's PATH.
_FALLBACK_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")
_INSTALL_HINT = (
    "install it (Debian/Ubuntu: `apt-get install pgbouncer`), or set "
    f"{ENV_PGBOUNCER} or binary= to the pgbouncer executable"
)
# pgbouncer refuses startup parameters it does not track; JDBC and some psycopg2 set-ups
# send this one, and dropping it is harmless. asyncpg and psycopg 3 send none.
_IGNORED_STARTUP_PARAMETERS = "extra_float_digits"
_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def find_pgbouncer(binary: str | os.PathLike[str] | None = None) -> Path:
    """Find the ``pgbouncer`` executable.

    Args:
        binary: Use exactly this file; else ``FKIT_TEST_PGBOUNCER``; else ``pgbouncer`` on
            ``PATH`` or in ``/usr/sbin``, ``/usr/local/sbin``.

    Returns:
        The absolute path of the executable.

    Raises:
        LauncherError: It is not installed; the message says how to install it.
    """
    explicit = binary or os.environ.get(ENV_PGBOUNCER) or None
    if explicit is not None:
        path = Path(explicit).absolute()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        source = "binary=" if binary else ENV_PGBOUNCER
        msg = f"pgbouncer is not at {path} (from {source}): {_INSTALL_HINT}"
        raise LauncherError(msg)
    search = os.pathsep.join(filter(None, [os.environ.get("PATH"), *_FALLBACK_DIRS]))
    found = shutil.which("pgbouncer", path=search)
    if found is None:
        msg = f"pgbouncer is not installed (looked on PATH and in {', '.join(_FALLBACK_DIRS)}): "
        raise LauncherError(msg + _INSTALL_HINT)
    return Path(found).absolute()


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    user: str
    password: str
    database: str

    """The server behind pgbouncer, from a URL or a running throwaway server."""

    @classmethod
    def parse(cls, target: str | PostgresServer) -> Target:
        """Read host, port, user, password and database from ``target``'s URL."""
        url = target.url if isinstance(target, PostgresServer) else target
        try:
            parts = urlsplit(plain_url(url))
        except ValueError as exc:
            raise LauncherError(f"pgbouncer needs a postgresql:// URL: {exc}") from None
        query = parse_qs(parts.query)
        user = unquote(parts.username or "") or query.get("user", ["postgres"])[0]
        database = unquote(parts.path.lstrip("/")) or query.get("dbname", [user])[0]
        return cls(
            host=parts.hostname or query.get("host", ["localhost"])[0],
            port=parts.port or int(query.get("port", ["5432"])[0]),
            user=user,
            password=unquote(parts.password or ""),
            database=database,
        )


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _ini_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    if "\n" in text:
        msg = f"pgbouncer setting values cannot span lines: {text!r}"
        raise LauncherError(msg)
    return text


def answers(port: int) -> bool:
    """Tell whether something speaking the PostgreSQL protocol listens on ``port``."""
    # The SSLRequest exchange: pgbouncer, like PostgreSQL, answers it with one byte.
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(_SSL_REQUEST)
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


def write_user_list(directory: Path, target: Target, user: OsUser | None) -> Path:
    """Write ``userlist.txt`` for ``target``'s user and return its path.

    ``auth_type = trust`` still needs the user listed; the password is what pgbouncer
    sends to the server, so the file is private to the OS user that runs pgbouncer.
    """
    path = directory / "userlist.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{_quoted(target.user)} {_quoted(target.password)}\n")
    if user is not None:
        os.chown(path, user.uid, user.gid)
    return path


def render_config(
    directory: Path,
    target: Target,
    *,
    port: int,
    pool_mode: PoolMode,
    default_pool_size: int,
    settings: Mapping[str, str | int | bool],
) -> str:
    """Return ``pgbouncer.ini``: every database passed through to ``target``."""
    merged: dict[str, str | int | bool] = {
        "listen_addr": HOST,
        "listen_port": port,
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": str(directory / "userlist.txt"),
        "admin_users": target.user,
        "pidfile": str(directory / "pgbouncer.pid"),
        "logfile": str(directory / "pgbouncer.log"),
        "pool_mode": pool_mode,
        "default_pool_size": default_pool_size,
        "ignore_startup_parameters": _IGNORED_STARTUP_PARAMETERS,
        # The default waits 15 s after a failed server login; tests should not.
        "server_login_retry": 1,
        **settings,
    }
    lines = ["[databases]", f"* = host={target.host} port={target.port}", "", "[pgbouncer]"]
    lines += [f"{name} = {_ini_value(value)}" for name, value in merged.items()]
    return "\n".join(lines) + "\n"


def read_pid(pidfile: Path) -> int | None:
    """The process id in a pid file, or ``None``."""
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
