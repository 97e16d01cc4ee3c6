"""A throwaway pgbouncer in front of a PostgreSQL server, removed like the servers are."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

from fkit_testing._bouncer_setup import (
    POOL_MODES,
    PoolMode,
    Target,
    answers,
    find_pgbouncer,
    read_pid,
    render_config,
    write_user_list,
)
from fkit_testing._cluster import HOST, make_temp_dir
from fkit_testing._errors import LauncherError
from fkit_testing._launcher import remember
from fkit_testing._osuser import resolve_os_user
from fkit_testing._reaper import DIR_PREFIX, Reaper, kill_from_pidfile, process_gone
from fkit_testing._tools import free_port, log_tail, run_tool

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import TracebackType

    from fkit_testing._launcher import PostgresServer
    from fkit_testing._osuser import OsUser

__all__ = ["PgBouncer", "launch_pgbouncer"]

_PREFIX = DIR_PREFIX + "bouncer-"
_PORT_ATTEMPTS = 5
_STOP_TIMEOUT = 30.0


@dataclass(slots=True)
class _State:
    directory: Path
    user: OsUser | None
    reaper: Reaper
    owner_pid: int
    port: int = 0


class PgBouncer:
    """A throwaway pgbouncer on 127.0.0.1 in front of a PostgreSQL server.

    It runs the system's ``pgbouncer`` (as the same unprivileged OS user as the launcher
    when this process is root) with its configuration, user list, log and pid file in a
    temporary directory. Clients log in to pgbouncer without a password (``auth_type =
    trust``); pgbouncer logs in to the server with the target URL's user and password.
    Every database name is passed through to the server. A reaper process kills it and
    deletes the directory when this process ends in any way, SIGKILL included.

    Args:
        target: The server: a running :class:`PostgresServer` or a ``postgresql://`` URL
            (a ``+driver`` suffix is ignored).
        pool_mode: ``"transaction"`` (default), ``"session"`` or ``"statement"``.
        default_pool_size: Server connections per database and user.
        settings: Extra ``[pgbouncer]`` settings, e.g. ``{"max_client_conn": 500}``.
        binary: The ``pgbouncer`` executable; see :func:`find_pgbouncer`.
        os_user: OS user that runs it when this process is root; default
            ``FKIT_TEST_PG_OS_USER``, else ``postgres``.
        base_dir: Where the temporary directory is created; default the system's.
        startup_timeout: Seconds the start may take.

    Example:
        >>> with PgBouncer("postgresql://postgres@127.0.0.1:5432/app") as bouncer:  # doctest: +SKIP
        ...     print(bouncer.url)
        postgresql://postgres@127.0.0.1:46321/app
    """

    def __init__(
        self,
        target: str | PostgresServer,
        *,
        pool_mode: PoolMode = "transaction",
        default_pool_size: int = 20,
        settings: Mapping[str, str | int | bool] | None = None,
        binary: str | os.PathLike[str] | None = None,
        os_user: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if pool_mode not in POOL_MODES:
            msg = f"pool_mode must be one of {', '.join(POOL_MODES)}, got {pool_mode!r}"
            raise LauncherError(msg)
        self._target = target
        self._pool_mode: PoolMode = pool_mode
        self._pool_size = default_pool_size
        self._settings = dict(settings or {})
        self._binary = binary
        self._os_user = os_user
        self._base_dir = base_dir
        self._timeout = startup_timeout
        self._database = ""
        self._user = ""
        self._state: _State | None = None

    def __repr__(self) -> str:
        where = self.url if self._state else "not running"
        return f"<PgBouncer {where}>"

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
        """Write the configuration, start pgbouncer on a free port; return ``self``.

        Raises:
            LauncherError: pgbouncer is missing or did not start; nothing is left behind.
        """
        if self._state is not None:
            msg = f"{self!r} is already running; stop() it before starting it again"
            raise LauncherError(msg)
        target = Target.parse(self._target)
        binary = find_pgbouncer(self._binary)
        user = resolve_os_user(self._os_user)
        base = Path(self._base_dir or tempfile.gettempdir()).absolute()
        directory = make_temp_dir(base, user, prefix=_PREFIX)
        try:
            pidfile = directory / "pgbouncer.pid"
            reaper = Reaper(remove_dir=directory, user=None, pidfile=pidfile)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._state = state = _State(directory, user, reaper, os.getpid())
        self._database, self._user = target.database, target.user
        remember(self)
        try:
            write_user_list(directory, target, user)
            self._launch(state, binary, target)
            try:
                state.reaper.wait_ready(self._timeout)
            except RuntimeError as exc:
                raise LauncherError(f"{exc}; pgbouncer would outlive a killed process") from exc
        except BaseException:
            with contextlib.suppress(LauncherError):
                self.stop()
            raise
        return self

    def _launch(self, state: _State, binary: Path, target: Target) -> None:
        ini = state.directory / "pgbouncer.ini"
        log = state.directory / "pgbouncer.log"
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_port()
            config = render_config(
                state.directory,
                target,
                port=port,
                pool_mode=self._pool_mode,
                default_pool_size=self._pool_size,
                settings=self._settings,
            )
            ini.write_text(config)
            log_start = log.stat().st_size if log.exists() else 0
            # -d: pgbouncer forks into the background and writes its pid file, which is
            # how it is stopped later; runuser would stand between us and a foreground one.
            argv = [str(binary), "-d", str(ini)]
            run_tool("starting pgbouncer", argv, user=state.user, timeout=self._timeout)
            if self._wait_listening(state, port, log, log_start):
                state.port = port
                return
            tail = log_tail(log, start=log_start)
            if "Address already in use" in tail and attempt < _PORT_ATTEMPTS:
                continue
            msg = f"pgbouncer ({binary}) did not start on port {port}:\n--- log ({log}) ---\n"
            raise LauncherError(msg + tail)

    def _wait_listening(self, state: _State, port: int, log: Path, log_start: int) -> bool:
        # The background process may still fail (a port taken meanwhile): it is up when
        # its pid file names a live process and the port answers, down after a FATAL.
        pidfile = state.directory / "pgbouncer.pid"
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if "FATAL" in log_tail(log, start=log_start):
                return False
            pid = read_pid(pidfile)
            if pid is not None and not process_gone(pid) and answers(port):
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        """Kill pgbouncer and delete its directory; calling it again does nothing.

        Raises:
            LauncherError: The directory could not be removed even by the reaper.
        """
        state, self._state = self._state, None
        # A forked child shares the object but does not own the process.
        if state is None or state.owner_pid != os.getpid():
            return
        try:
            kill_from_pidfile(state.directory / "pgbouncer.pid")
            shutil.rmtree(state.directory, ignore_errors=True)
        finally:
            # The reaper retries whatever failed above, then exits.
            state.reaper.release(_STOP_TIMEOUT)
        if state.directory.exists():
            msg = f"could not remove the pgbouncer directory {state.directory}"
            raise LauncherError(msg)

    def _forget(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            state.reaper._forget()

    def _running(self) -> _State:
        if self._state is None:
            msg = "pgbouncer is not running: call start() or use `with PgBouncer(...) as b:`"
            raise LauncherError(msg)
        return self._state

    @property
    def running(self) -> bool:
        """Whether pgbouncer is started (or starting) and not stopped yet."""
        return self._state is not None

    @property
    def pool_mode(self) -> PoolMode:
        """The pool mode: ``"transaction"``, ``"session"`` or ``"statement"``."""
        return self._pool_mode

    @property
    def host(self) -> str:
        """The address pgbouncer listens on."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port pgbouncer listens on."""
        return self._running().port

    @property
    def directory(self) -> Path:
        """The temporary directory holding the configuration, user list, log and pid file."""
        return self._running().directory

    @property
    def log_path(self) -> Path:
        """The pgbouncer log."""
        return self._running().directory / "pgbouncer.log"

    @property
    def pid(self) -> int:
        """The pgbouncer process id."""
        pid = read_pid(self._running().directory / "pgbouncer.pid")
        if pid is None:
            raise LauncherError("pgbouncer's pid file is gone")
        return pid

    @property
    def reaper_pid(self) -> int:
        """The reaper process's id."""
        return self._running().reaper.pid

    @property
    def url(self) -> str:
        """``postgresql://USER@127.0.0.1:PORT/DATABASE``: the target's user and database.

        No password: pgbouncer lets its listed user in without one.
        """
        return self.database_url(self._database)

    def database_url(self, database: str) -> str:
        """Return the URL of ``database`` on the target server, through pgbouncer."""
        state = self._running()
        user = quote(self._user, safe="")
        return f"postgresql://{user}@{HOST}:{state.port}/{quote(database, safe='')}"


@contextlib.contextmanager
def launch_pgbouncer(
    target: str | PostgresServer,
    *,
    pool_mode: PoolMode = "transaction",
    default_pool_size: int = 20,
    settings: Mapping[str, str | int | bool] | None = None,
    binary: str | os.PathLike[str] | None = None,
    os_user: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[PgBouncer]:
    """Run a throwaway pgbouncer in front of ``target`` for the ``with`` block.

    See :class:`PgBouncer` for the arguments.

    Example:
        >>> with launch_postgres() as server, launch_pgbouncer(server) as bouncer:  # doctest: +SKIP
        ...     url = bouncer.url  # use with BasePostgresConfig(url=url, pgbouncer=True)

    Raises:
        LauncherError: pgbouncer is not installed, or could not be started or removed.
    """
    bouncer = PgBouncer(
        target,
        pool_mode=pool_mode,
        default_pool_size=default_pool_size,
        settings=settings,
        binary=binary,
        os_user=os_user,
        base_dir=base_dir,
        startup_timeout=startup_timeout,
    )
    with bouncer:
        yield bouncer
