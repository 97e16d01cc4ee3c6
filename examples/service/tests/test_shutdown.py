"""``fkit-demo`` on its embedded PostgreSQL stops cleanly on Ctrl-C (and SIGTERM).

The command runs as a real subprocess, started through its console script, without any
database URL: it must start its own server, say where the data lives, serve, and on the
signal close the container, stop the server and remove its directory, exiting 0 with
nothing left running.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

HANG_GUARD = 120.0  # seconds; start-up takes a few, shutdown about one


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FKIT_DB_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (reaper, postmaster, backends)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_demo_stops_cleanly_leaving_nothing_running(sig: signal.Signals) -> None:
    command = Path(sys.executable).with_name("fkit-demo")
    assert command.is_file(), f"the console script is not installed at {command}"
    proc = subprocess.Popen(
        [str(command), "--port", "0", "--settle-every", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + HANG_GUARD
        url = None
        while url is None:
            assert time.monotonic() < deadline, "".join(output)
            assert proc.poll() is None, "".join(output)
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if match := re.search(r"serving on (http://127\.0\.0\.1:\d+)", line):
                url = match.group(1)
        text = "".join(output)
        assert "FKIT_DB_URL is not set, so starting an embedded PostgreSQL" in text
        directory_match = re.search(r"temporary directory (\S+), which is removed", text)
        pid_match = re.search(r"embedded PostgreSQL \d+ is up \(pid (\d+)\)", text)
        assert directory_match, text
        assert pid_match, text
        directory, postmaster = directory_match.group(1), int(pid_match.group(1))
        assert Path(directory).is_dir()
        assert re.search(rf"data:\s+{re.escape(directory)}/data", text)
        assert _alive(postmaster)

        health = httpx.get(f"{url}/healthz", timeout=30)
        assert health.status_code == 200
        assert health.json()["healthy"] is True
        created = httpx.post(
            f"{url}/users", json={"email": "ada@example.org", "name": "Ada"}, timeout=30
        )
        assert created.status_code == 201

        proc.send_signal(sig)
        assert proc.wait(timeout=HANG_GUARD) == 0, "".join(output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    text = "".join(output)

    # In this order: the container (and manager) closed, the service stopped, the server removed.
    closed = text.index("fkit-demo: container closed; the session manager is closed")
    stopped = text.index("fkit-demo: the service stopped")
    removed = text.index(f"fkit-demo: embedded PostgreSQL stopped; {directory} removed")
    assert closed < stopped < removed
    assert not Path(directory).exists()
    assert not _alive(postmaster)
    # The launcher's reaper exits on its own once the server is gone: give it a moment.
    deadline = time.monotonic() + 30
    while _processes_mentioning(directory) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(directory) == []
