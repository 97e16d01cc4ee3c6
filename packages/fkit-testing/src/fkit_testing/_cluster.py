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

__all__ = ["HOST", "REPLICATION_SETTINGS", "SUPERUSER", "Cluster", "make_temp_dir"]

HOST = "127.0.0.1"
SUPERUSER = "postgres"
# Durability is worthless for a server that is deleted afterwards; speed is not.
FAST_SETTINGS: dict[str, SettingValue] = {
    "fsync": False,
    "synchronous_commit": False,
    "full_page_writes": False,
}
# What a primary needs so that pg_basebackup and streaming replicas can connect. Most are
# PostgreSQL's defaults, written out so that a replica does not depend on them.
REPLICATION_SETTINGS: dict[str, SettingValue] = {
    "wal_level": "replica",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    # Keeps WAL around for a replica that falls behind; nothing is allocated up front.
    "wal_keep_size": "128MB",
}
_REPLICATION_HBA = ("host", "replication", "all", f"{HOST}/32", "trust")
_PORT_ATTEMPTS = 5
_STOP_TIMEOUT = 30.0


def make_temp_dir(base: Path, user: OsUser | None, *, prefix: str) -> Path:
    """Make a temporary directory under ``base`` that ``user`` owns.

    Raises:
        LauncherError: ``base`` is not reachable by ``user``.
    """
    if not prefix.startswith(DIR_PREFIX):
        msg = f"temporary directory prefix {prefix!r} must start with {DIR_PREFIX!r} for the reaper"
        raise ValueError(msg)
    if user is not None and not user.can_reach(base):
        msg = f"{base} is not reachable by OS user {user.name!r}; pass base_dir= or set TMPDIR"
        raise LauncherError(msg)
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if user is not None:
        try:
            os.chown(directory, user.uid, user.gid)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
    return directory


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
        directory = make_temp_dir(base, user, prefix=DIR_PREFIX)
        try:
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
        merged: dict[str, SettingValue] = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.directory),
            **FAST_SETTINGS,
            **settings,
        }
        self._configure("a throwaway server", merged)

    def basebackup(
        self, *, source_port: int, settings: Mapping[str, SettingValue], timeout: float
    ) -> None:
        """Copy the server at ``source_port`` as a hot standby that streams from it.

        Raises:
            LauncherError: ``pg_basebackup`` is missing or failed.
        """
        tool = self.bindir / "pg_basebackup"
        if not tool.is_file():
            msg = f"{self.bindir} lacks pg_basebackup, which a replica needs"
            raise LauncherError(msg)
        argv = [str(tool), "-h", HOST, "-p", str(source_port), "-U", SUPERUSER, "-w"]
        # A fast checkpoint: the default spread one can keep the copy waiting for minutes.
        argv += ["-D", str(self.data_dir), "--write-recovery-conf", "--wal-method=stream"]
        argv += ["--checkpoint=fast", "--no-sync"]
        run_tool("pg_basebackup", argv, user=self.user, timeout=timeout)
        # The copied postgresql.conf names the primary's socket directory; later lines win.
        merged: dict[str, SettingValue] = {
            "unix_socket_directories": str(self.directory),
            "hot_standby": True,
        }
        self._configure("a streaming replica", {**merged, **settings})

    def allow_replication(self) -> None:
        """Make sure ``pg_hba.conf`` lets replication connections in from 127.0.0.1."""
        hba = self.data_dir / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        if not any(tuple(line.split()) == _REPLICATION_HBA for line in lines):
            with hba.open("a") as handle:
                handle.write("\n" + "\t".join(_REPLICATION_HBA) + "\n")

    def _configure(self, title: str, settings: Mapping[str, SettingValue]) -> None:
        self.version = int((self.data_dir / "PG_VERSION").read_text().strip().split(".")[0])
        # Settings go into the file, not onto pg_ctl's command line, which a shell parses.
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# fkit-testing: {title}\n" + conf_lines(settings))

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
