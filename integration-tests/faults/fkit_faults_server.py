"""Stop and start a throwaway server in place: same data directory, same port.

``PostgresServer.stop()`` removes the cluster, so a restart goes through the server's own
``pg_ctl``, as the launcher runs it: as the OS user that owns the data directory (through
``runuser`` when this process is root). Only the public properties of
:class:`fkit_testing.PostgresServer` are used (``bindir``, ``data_dir``, ``log_path``,
``port``); the launcher's reaper still stops the restarted server if this process dies.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from fkit_testing import PostgresServer

__all__ = ["Restarter", "with_driver"]

_TIMEOUT = 60


def with_driver(url: str, driver: str, *, port: int | None = None) -> str:
    """``url`` with ``driver`` (and another port, for a proxy in front of the server)."""
    parsed = make_url(url).set(drivername=f"postgresql+{driver}")
    if port is not None:
        parsed = parsed.set(host="127.0.0.1", port=port)
    return parsed.render_as_string(hide_password=False)


class Restarter:
    """``pg_ctl stop``/``start`` for a running :class:`~fkit_testing.PostgresServer`."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.port = server.port
        self._pg_ctl = str(server.bindir / "pg_ctl")
        self._data = str(server.data_dir)
        self._log = str(server.log_path)
        owner = server.data_dir.stat().st_uid
        self._prefix: list[str] = []
        if os.geteuid() == 0 and owner != 0:
            # pg_ctl refuses to run as root, like initdb and postgres.
            runuser = shutil.which("runuser") or "runuser"
            self._prefix = [runuser, "-u", pwd.getpwuid(owner).pw_name, "--"]

    def _pg_ctl_run(self, *args: str) -> None:
        argv = [*self._prefix, self._pg_ctl, *args, "-D", self._data, "-w", "-t", str(_TIMEOUT)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=_TIMEOUT + 10, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")

    async def stop(self) -> None:
        """Fast shutdown: every backend is terminated (57P01), open transactions roll back."""
        await asyncio.to_thread(self._pg_ctl_run, "stop", "-m", "fast")

    async def start(self) -> None:
        """Start again on the same port, waiting until it accepts connections."""
        await asyncio.to_thread(
            self._pg_ctl_run, "start", "-s", "-l", self._log, "-o", f"-p {self.port}"
        )
