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
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from fkit_testing._reaper import READY, wait_for_release, watch_args

__all__ = ["DatabaseReaper", "main"]

_DONE = b"done\n"


class DatabaseReaper:
    """The owner's handle on a running database reaper.

    Args:
        job: ``server_url``, ``driver``, ``run``, ``worker``, ``schema`` and ``database``.
    """

    def __init__(self, job: dict[str, str]) -> None:
        read_end, self._write_end = os.pipe()
        argv = [sys.executable, "-m", "fkit_testing._dbreaper", *watch_args()]
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        try:
            self.process = subprocess.Popen(
                argv, stdin=read_end, stdout=subprocess.PIPE, env=env, start_new_session=True
            )
            os.write(self._write_end, json.dumps(job).encode() + b"\n")
        except BaseException:
            os.close(self._write_end)
            self._write_end = -1
            raise
        finally:
            os.close(read_end)

    @property
    def pid(self) -> int:
        """The reaper's process id."""
        return self.process.pid

    def wait_ready(self, timeout: float) -> None:
        """Wait until the reaper has read its job and watches the pipe.

        Raises:
            RuntimeError: It exited or did not answer within ``timeout`` seconds.
        """
        stdout = self.process.stdout
        assert stdout is not None
        try:
            ready, _, _ = select.select([stdout], [], [], timeout)
            line = stdout.readline() if ready else b""
        finally:
            stdout.close()
        if line != READY:
            code = self.process.poll()
            state = f"exited with code {code}" if code is not None else "did not answer"
            raise RuntimeError(f"the database reaper process {state}")

    def release(self, *, done: bool, timeout: float = 60.0) -> None:
        """Let the reaper go: ``done`` says the owner dropped the database itself."""
        if self._write_end >= 0:
            with contextlib.suppress(OSError):
                if done:
                    os.write(self._write_end, _DONE)
            os.close(self._write_end)
            self._write_end = -1
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _forget(self) -> None:
        # A forked child must not keep the pipe open: only the owner's end counts.
        if self._write_end >= 0:
            with contextlib.suppress(OSError):
                os.close(self._write_end)
            self._write_end = -1


class _Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: object) -> None:
    raise _Interrupted


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
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        os.write(sys.stdout.fileno(), READY)
        sys.stdout.close()
        received += wait_for_release(fd, args.watch_pid, args.watch_start)
    except _Interrupted:
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
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
