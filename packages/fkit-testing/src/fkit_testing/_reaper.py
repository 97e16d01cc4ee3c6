"""A watchdog process that removes a throwaway server when its owner goes away.

The launcher starts ``python -m fkit_testing._reaper`` with the read end of a pipe as its
stdin and keeps the only write end. The kernel closes that write end however the owner
ends, even on SIGKILL, so EOF on stdin is the one signal the reaper needs: it then stops
the server (``pg_ctl stop -m immediate`` for PostgreSQL, a kill of the process named in a
pid file for pgbouncer) and removes the temporary directory. The reaper runs in its own
session, so a Ctrl-C aimed at the test run's process group cannot kill it before it has
cleaned up.

Under pytest-xdist the reaper also watches the run's controller process
(:func:`watch_process`): a worker outlives a SIGKILLed controller until its current test
ends, but its servers and databases belong to a run that is over.

This module imports only the standard library: it runs in a fresh interpreter on every
server start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "DIR_PREFIX",
    "READY",
    "Reaper",
    "WatchdogProcess",
    "kill_from_pidfile",
    "main",
    "process_gone",
    "process_start",
    "serve_until_released",
    "wait_for_release",
    "watch_args",
    "watch_process",
]

DIR_PREFIX = "fkit-pg-"
READY = b"fkit-reaper-ready\n"
_STOP_TIMEOUT = 30
_WATCH_INTERVAL = 0.5
# (pid, start time) of a process whose end also ends the owner's claim: the xdist controller.
_watched: tuple[int, str] | None = None


def process_start(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot, or ``""`` when unknown.

    A pid together with its start time names one process even after the pid is reused.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def watch_process(pid: int | None) -> None:
    """Make reapers started from now on also clean up when process ``pid`` ends.

    The pytest plugin calls it in xdist workers with the controller's pid; ``None`` stops it.
    """
    global _watched
    _watched = None if pid is None else (pid, process_start(pid))


def watch_args() -> list[str]:
    """The reaper arguments naming the watched process, if any."""
    if _watched is None:
        return []
    return ["--watch-pid", str(_watched[0]), "--watch-start", _watched[1]]


def _watched_gone(pid: int | None, start: str) -> bool:
    if pid is None:
        return False
    return process_gone(pid) or (bool(start) and process_start(pid) not in ("", start))


def wait_for_release(fd: int, watch_pid: int | None = None, watch_start: str = "") -> bytes:
    """Read ``fd`` until EOF, or until the watched process is gone; return what was read."""
    received = b""
    while True:
        # Without a process to watch, a blocking read is all it takes.
        ready = watch_pid is None or bool(select.select([fd], [], [], _WATCH_INTERVAL)[0])
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return received
            received += chunk
        elif _watched_gone(watch_pid, watch_start):
            return received


class WatchdogProcess:
    """The owner's handle on a watchdog process that reads the owner's pipe until EOF.

    Starts ``argv`` in its own session with the read end of a pipe as stdin and keeps
    the only write end; the kernel closes it however this process ends.

    Args:
        argv: The watchdog's command line (``python -m ...``).
        description: How errors name it.
        first_line: Written to the pipe at once (a job the watchdog reads first).
    """

    def __init__(self, argv: list[str], description: str, first_line: bytes | None = None):
        read_end, self._write_end = os.pipe()
        self._description = description
        env = dict(os.environ)
        # The watchdog must import this package even when it is not installed (src layout).
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        try:
            self.process = subprocess.Popen(
                argv, stdin=read_end, stdout=subprocess.PIPE, env=env, start_new_session=True
            )
            if first_line is not None:
                os.write(self._write_end, first_line)
        except BaseException:
            os.close(self._write_end)
            self._write_end = -1
            raise
        finally:
            os.close(read_end)

    @property
    def pid(self) -> int:
        """The watchdog's process id."""
        return self.process.pid

    def wait_ready(self, timeout: float) -> None:
        """Wait until the watchdog is watching the pipe.

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
            raise RuntimeError(f"{self._description} {state}")

    def _release(self, timeout: float, last_line: bytes | None = None) -> None:
        """Close the pipe (after ``last_line``) and wait for the watchdog to finish."""
        if self._write_end >= 0:
            if last_line is not None:
                with contextlib.suppress(OSError):
                    os.write(self._write_end, last_line)
            os.close(self._write_end)
            self._write_end = -1
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _forget(self) -> None:
        # In a forked child: drop the write end, so that only the owner keeps it open.
        if self._write_end >= 0:
            with contextlib.suppress(OSError):
                os.close(self._write_end)
            self._write_end = -1


class Reaper(WatchdogProcess):
    """The owner's handle on a running server reaper process."""

    def __init__(
        self,
        *,
        remove_dir: Path,
        user: tuple[str, str] | None,
        pg_ctl: Path | None = None,
        data_dir: Path | None = None,
        pidfile: Path | None = None,
    ):
        """Start the reaper process; it is armed once :meth:`wait_ready` returns.

        Args:
            remove_dir: The temporary directory to delete; its name must start with
                ``fkit-pg-`` so that a wrong argument can never delete anything else.
            user: ``(runuser, name)`` to run ``pg_ctl`` as that OS user, or ``None``.
            pg_ctl: The ``pg_ctl`` binary that stops a PostgreSQL server.
            data_dir: That server's data directory.
            pidfile: A pid file inside ``remove_dir`` naming a process to kill instead
                (pgbouncer).
        """
        argv = [sys.executable, "-m", "fkit_testing._reaper", str(remove_dir)]
        if pg_ctl is not None and data_dir is not None:
            argv += ["--pg-ctl", str(pg_ctl), "--data-dir", str(data_dir)]
        if pidfile is not None:
            argv += ["--pidfile", str(pidfile)]
        if user is not None:
            argv += ["--runuser", user[0], "--user", user[1]]
        argv += watch_args()
        super().__init__(argv, f"the reaper process ({' '.join(argv)})")

    def release(self, timeout: float) -> None:
        """Close the pipe and wait for the reaper to finish its cleanup."""
        self._release(timeout)


class _Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted


def serve_until_released(fd: int, watch_pid: int | None, watch_start: str) -> bytes:
    """The watchdog's side: say it is ready, then wait for EOF (or the watched process).

    SIGINT, SIGTERM and SIGHUP end the wait early; afterwards they are ignored, so the
    cleanup that follows finishes whatever else arrives. Returns what the owner wrote.
    """
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        os.write(sys.stdout.fileno(), READY)
        sys.stdout.close()
        return wait_for_release(fd, watch_pid, watch_start)
    except _Interrupted:
        return b""
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)


def _server_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _have_proc() -> bool:
    return Path("/proc/self/stat").exists()


def process_gone(pid: int) -> bool:
    """Tell whether ``pid`` names no live process; a zombie counts as gone.

    A daemon whose parent is a container's PID 1 may never be reaped, so its zombie
    must not be mistaken for a running process.
    """
    if not _have_proc():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def kill_from_pidfile(pidfile: Path, *, timeout: float = 10.0) -> None:
    """SIGKILL the process named in ``pidfile`` and wait until it is gone.

    On Linux only a process whose command line mentions the pid file's directory is
    killed, so a stale pid file whose number was reused by another process is harmless.
    Nothing of a throwaway pgbouncer is worth a graceful shutdown, and the signals for a
    graceful one mean different things in different pgbouncer versions.
    """
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if _have_proc():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            return
        if os.fsencode(pidfile.parent) + b"/" not in cmdline:
            return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while not process_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _cleanup(
    pg_ctl: str | None,
    data_dir: Path | None,
    pidfile: Path | None,
    remove_dir: Path,
    run_as: list[str],
) -> None:
    """Stop the server if it runs, then delete ``remove_dir``."""
    if pidfile is not None:
        kill_from_pidfile(pidfile)
    if pg_ctl is not None and data_dir is not None and _server_pid(data_dir) is not None:
        argv = [*run_as, pg_ctl, "stop", "-D", str(data_dir), "-m", "immediate", "-w", "-s"]
        argv += ["-t", str(_STOP_TIMEOUT)]
        done = subprocess.run(argv, capture_output=True, check=False)
        pid = _server_pid(data_dir)
        if done.returncode != 0 and pid is not None:
            # pg_ctl could not do it (binaries gone, say); the postmaster's children
            # exit by themselves once it is dead.
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        shutil.rmtree(remove_dir, ignore_errors=True)
        if not remove_dir.exists():
            return
        # A dying server may still be writing files; try again shortly.
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    """Run the reaper: wait for EOF on stdin, then stop the server and remove its files."""
    parser = argparse.ArgumentParser(prog="python -m fkit_testing._reaper")
    parser.add_argument("remove_dir", type=Path)
    parser.add_argument("--pg-ctl")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--pidfile", type=Path)
    parser.add_argument("--runuser")
    parser.add_argument("--user")
    parser.add_argument("--watch-pid", type=int)
    parser.add_argument("--watch-start", default="")
    args = parser.parse_args(argv)
    run_as = [args.runuser, "-u", args.user, "--"] if args.user else []
    if not args.remove_dir.name.startswith(DIR_PREFIX):
        parser.error(f"refusing to remove {args.remove_dir}: its name must start with {DIR_PREFIX}")
    if args.pidfile is not None and args.pidfile.parent != args.remove_dir:
        parser.error(f"refusing to use {args.pidfile}: it must be inside {args.remove_dir}")
    serve_until_released(sys.stdin.fileno(), args.watch_pid, args.watch_start)
    _cleanup(args.pg_ctl, args.data_dir, args.pidfile, args.remove_dir, run_as)
    return 0


if __name__ == "__main__":
    sys.exit(main())
