"""A watchdog process that drops a worker's test database when its owner goes away.

Like the server reaper (:mod:`fkit_testing._reaper`), it holds the read end of a pipe
whose only write end the owning pytest process keeps. The first line the owner writes is
the job, as JSON (the server URL travels here, never on the command line, where ``ps``
would show its password). When the owner finishes normally it drops the database itself
and writes ``done`` before closing the pipe; EOF without ``done`` (the owner was killed)
or the end of the watched xdist controller makes the reaper drop the database, and the
run's template when it was the last one.

Standard library only until the cleanup runs: it starts with every worker database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from fkit_testing._reaper import WatchdogProcess, serve_until_released, watch_args

__all__ = ["DatabaseReaper", "main"]

_DONE = b"done\n"


class DatabaseReaper(WatchdogProcess):
    """The owner's handle on a running database reaper.

    Args:
        job: ``server_url``, ``driver``, ``run``, ``worker``, ``schema`` and ``database``.
    """

    def __init__(self, job: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "fkit_testing._dbreaper", *watch_args()]
        first = json.dumps(job).encode() + b"\n"
        super().__init__(argv, "the database reaper process", first_line=first)

    def release(self, *, done: bool, timeout: float = 60.0) -> None:
        """Let the reaper go: ``done`` says the owner dropped the database itself."""
        self._release(timeout, _DONE if done else None)


def _read_job(fd: int) -> tuple[dict[str, Any], bytes]:
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 4096)
        if not chunk:
            raise SystemExit("fkit_testing._dbreaper: no job on stdin")
        data += chunk
    line, _, rest = data.partition(b"\n")
    job: dict[str, Any] = json.loads(line)
    return job, rest


def _cleanup(job: dict[str, Any]) -> None:
    from fkit_testing._dbadmin import drop_worker_database
    from fkit_testing._run import RunIdentity

    identity = RunIdentity(job["run"], job["worker"], job.get("schema", ""))
    asyncio.run(drop_worker_database(job["server_url"], job["driver"], identity, job["database"]))


def main(argv: list[str] | None = None) -> int:
    """Run the reaper: read the job, wait for the owner to go, then drop its database."""
    parser = argparse.ArgumentParser(prog="python -m fkit_testing._dbreaper")
    parser.add_argument("--watch-pid", type=int)
    parser.add_argument("--watch-start", default="")
    args = parser.parse_args(argv)
    fd = sys.stdin.fileno()
    job, received = _read_job(fd)
    received += serve_until_released(fd, args.watch_pid, args.watch_start)
    if _DONE in received:
        return 0
    try:
        _cleanup(job)
    except Exception as exc:
        print(
            f"fkit_testing._dbreaper: dropping {job.get('database')} failed: {exc!r}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
