"""The server and its directory go away however the owning process ends."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

OWNER = """
import json, sys, time
from fkit_testing import launch_postgres

with launch_postgres() as server:
    info = dict(pid=server.pid, reaper=server.reaper_pid, directory=str(server.directory))
    print(json.dumps(info), flush=True)
    time.sleep(600)
"""

REAPER = [sys.executable, "-m", "fkit_testing._reaper"]

# Owns a primary, its replica and a pgbouncer in front of the primary.
PAIR_AND_BOUNCER_OWNER = """
import json, sys, time
from fkit_testing import launch_pgbouncer, launch_replica_pair

with launch_replica_pair() as pair, launch_pgbouncer(pair.primary) as bouncer:
    info = [
        dict(pid=s.pid, reaper=s.reaper_pid, directory=str(s.directory))
        for s in (pair.primary, pair.replica, bouncer)
    ]
    print(json.dumps(info), flush=True)
    time.sleep(600)
"""


@pytest.fixture
def owner(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], Any]]:
    """A child Python process that owns running servers, and what it reported."""
    script = tmp_path / "owner.py"
    script.write_text(getattr(request, "param", OWNER))
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 60)
        line = child.stdout.readline() if ready else ""
        assert line, f"the owner process did not start a server: {child.poll()=}"
        yield child, json.loads(line)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=60)


def assert_server_alive(info: dict[str, Any], process_gone: Callable[[int], bool]) -> None:
    assert Path(info["directory"]).is_dir()
    assert not process_gone(info["pid"])
    assert not process_gone(info["reaper"])


def wait_removed(
    info: dict[str, Any],
    eventually: Callable[[Callable[[], bool], str], None],
    process_gone: Callable[[int], bool],
) -> None:
    eventually(lambda: process_gone(info["pid"]), "the postmaster to exit")
    eventually(lambda: not Path(info["directory"]).exists(), "the directory to be removed")
    eventually(lambda: process_gone(info["reaper"]), "the reaper to exit")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_reaper_cleans_up_after_the_owner_dies(
    owner: tuple[subprocess.Popen[str], dict[str, Any]],
    signum: signal.Signals,
    eventually: Callable[[Callable[[], bool], str], None],
    process_gone: Callable[[int], bool],
) -> None:
    child, info = owner
    assert_server_alive(info, process_gone)
    os.kill(child.pid, signum)
    assert child.wait(timeout=60) == -signum
    wait_removed(info, eventually, process_gone)


@pytest.mark.parametrize("owner", [PAIR_AND_BOUNCER_OWNER], indirect=True, ids=["pair+bouncer"])
def test_reaper_removes_replica_and_pgbouncer_after_sigkill(
    owner: tuple[subprocess.Popen[str], list[dict[str, Any]]],
    eventually: Callable[[Callable[[], bool], str], None],
    process_gone: Callable[[int], bool],
) -> None:
    child, infos = owner
    assert Path(infos[2]["directory"]).name.startswith("fkit-pg-bouncer-")
    for info in infos:
        assert_server_alive(info, process_gone)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    for info in infos:
        wait_removed(info, eventually, process_gone)


def test_ctrl_c_to_the_process_group_cleans_up(
    owner: tuple[subprocess.Popen[str], dict[str, Any]],
    eventually: Callable[[Callable[[], bool], str], None],
    process_gone: Callable[[int], bool],
) -> None:
    child, info = owner
    # The reaper and the server run in sessions of their own: a terminal's Ctrl-C reaches
    # only the owner, whose `with` block then stops the server.
    assert os.getsid(info["reaper"]) == info["reaper"]
    os.killpg(child.pid, signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert "KeyboardInterrupt" in stderr
    wait_removed(info, eventually, process_gone)


def test_reaper_only_removes_its_own_directories() -> None:
    foreign = Path(tempfile.mkdtemp(prefix="not-fkit-"))
    try:
        (foreign / "keep.txt").write_text("precious")
        done = subprocess.run(
            [sys.executable, "-m", "fkit_testing._reaper", str(foreign), "--pg-ctl", "pg_ctl"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 2
        assert "refusing to remove" in done.stderr
        assert (foreign / "keep.txt").read_text() == "precious"
    finally:
        (foreign / "keep.txt").unlink()
        foreign.rmdir()


def test_reaper_only_kills_from_a_pid_file_in_its_directory(tmp_path: Path) -> None:
    own = Path(tempfile.mkdtemp(prefix="fkit-pg-"))
    try:
        done = subprocess.run(
            [*REAPER, str(own), "--pidfile", str(tmp_path / "other.pid")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 2
        assert "must be inside" in done.stderr
        assert own.is_dir()
    finally:
        own.rmdir()


def test_stale_pid_file_does_not_kill_another_process(
    process_gone: Callable[[int], bool],
) -> None:
    own = Path(tempfile.mkdtemp(prefix="fkit-pg-"))
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (own / "pgbouncer.pid").write_text(f"{bystander.pid}\n")
        done = subprocess.run(
            [*REAPER, str(own), "--pidfile", str(own / "pgbouncer.pid")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0
        assert not own.exists()
        assert not process_gone(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()
