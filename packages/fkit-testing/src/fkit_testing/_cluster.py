"""One throwaway cluster on disk: create it, start it, destroy it.

:class:`~fkit_testing.PostgresServer` is the public face; this module holds the steps.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fkit_testing._errors import LauncherError
from fkit_testing._reaper import DIR_PREFIX, Reaper
from fkit_testing._tools import SettingValue, conf_lines, free_port, log_tail, run_tool

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from fkit_testing._osuser import OsUser

__all__ = ["HOST", "SUPERUSER", "Cluster"]

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


@dataclass(slots=True)
class Cluster:
    """A temporary directory with a data directory, a socket, a log, and its reaper."""

    bindir: Path
    user: OsUser | None
    directory: Path
    reaper: Reaper
    owner_pid: int
    port: int = 0
    version: int = 0

    @classmethod
    def create(cls, *, bindir: Path, user: OsUser | None, base: Path) -> Cluster:
        """Make the temporary directory and arm a reaper for it.

        Raises:
            LauncherError: ``base`` is not reachable by ``user``.
        """
        if user is not None and not user.can_reach(base):
            msg = f"{base} is not reachable by OS user {user.name!r}; pass base_dir= or set TMPDIR"
            raise LauncherError(msg)
        directory = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=base))
        try:
            if user is not None:
                os.chown(directory, user.uid, user.gid)
            owner = (user.runuser, user.name) if user is not None else None
            pg_ctl = bindir / "pg_ctl"
            reaper = Reaper(
                pg_ctl=pg_ctl, data_dir=directory / "data", remove_dir=directory, user=owner
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return cls(bindir, user, directory, reaper, os.getpid())

    @property
    def data_dir(self) -> Path:
        """The data directory inside the temporary directory."""
        return self.directory / "data"

    @property
    def log(self) -> Path:
        """The server log."""
        return self.directory / "server.log"

    def initdb(
        self, *, args: Sequence[str], settings: Mapping[str, SettingValue], timeout: float
    ) -> None:
        """Create the cluster and write its settings."""
        argv = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "--auth=trust"]
        argv += ["-U", SUPERUSER, "-E", "UTF8", "--no-sync", "--no-instructions", *args]
        run_tool("initdb", argv, user=self.user, timeout=timeout)
        self.version = int((self.data_dir / "PG_VERSION").read_text().strip().split(".")[0])
        # Settings go into the file, not onto pg_ctl's command line, which a shell parses.
        merged: dict[str, SettingValue] = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.directory),
            **FAST_SETTINGS,
            **settings,
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# fkit-testing: a throwaway server\n" + conf_lines(merged))

    def start(self, *, timeout: float) -> None:
        """Start the server on a free port and wait until it accepts connections."""
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_port()
            log_start = self.log.stat().st_size if self.log.exists() else 0
            argv = [str(self.bindir / "pg_ctl"), "start", "-D", str(self.data_dir)]
            argv += ["-l", str(self.log), "-w", "-s", "-t", str(int(timeout)), "-o", f"-p {port}"]
            try:
                run_tool(
                    "starting the server",
                    argv,
                    user=self.user,
                    timeout=timeout + 10,
                    log=self.log,
                    log_start=log_start,
                )
            except LauncherError:
                # Another process may take the port between probing and binding it.
                in_use = "Address already in use" in log_tail(self.log, start=log_start)
                if in_use and attempt < _PORT_ATTEMPTS:
                    continue
                raise
            self.port = port
            return

    def server_pid(self) -> int:
        """The postmaster's process id, from its lock file."""
        return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])

    def destroy(self) -> None:
        """Stop the server, delete the directory, and let the reaper go.

        Raises:
            LauncherError: The directory still exists after the reaper's attempt too.
        """
        failure = ""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                argv = [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir)]
                argv += ["-m", "immediate", "-w", "-s", "-t", str(int(_STOP_TIMEOUT))]
                try:
                    timeout = _STOP_TIMEOUT + 10
                    run_tool("stopping the server", argv, user=self.user, timeout=timeout)
                except LauncherError as exc:
                    failure = str(exc)
            shutil.rmtree(self.directory, ignore_errors=True)
        finally:
            # The reaper retries whatever failed above, then exits.
            self.reaper.release(_STOP_TIMEOUT + 10)
        if self.directory.exists():
            msg = f"could not remove the server directory {self.directory}. {failure}"
            raise LauncherError(msg.strip())
