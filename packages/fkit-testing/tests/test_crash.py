"""A killed test run leaves no database and no server behind.

Each test starts a user's suite in a pytest process of its own, waits until its tests
hold their databases (and servers), SIGKILLs the pytest process, and waits for the
reapers to remove everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HANG_GUARD = 120.0
INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
"""

HANGING_SUITE = """
import json
import os
import time

import pytest
from sqlalchemy import text


@pytest.mark.asyncio
async def test_hangs(fkit_manager, fkit_worker_database):
    async with fkit_manager.get_session() as session:
        data_dir = await session.scalar(text("show data_directory"))
    facts = dict(
        database=fkit_worker_database.name,
        template=fkit_worker_database.template,
        data_dir=data_dir,
        pid=os.getpid(),
    )
    with open("seen.jsonl", "a") as seen:
        seen.write(json.dumps(facts) + "\\n")
    time.sleep(600)
"""


async def existing(url: str, names: list[str]) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("select datname from pg_database where datname = any($1)", names)
    finally:
        await conn.close()
    return sorted(row["datname"] for row in rows)


def wait_for_lines(path: Path, count: int, child: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + HANG_GUARD
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        if child.poll() is not None or time.monotonic() > deadline:
            output = child.stdout.read().decode() if child.stdout else ""
            pytest.fail(f"the suite did not get going (exit {child.poll()}):\n{output}")
        select.select([], [], [], 0.05)


@pytest.fixture
def suite(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Start the hanging suite; every process it started is killed at the end."""
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_hang.py").write_text(HANGING_SUITE)
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env_url: str | None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FKIT_TEST_")}
        if env_url is not None:
            env["FKIT_TEST_DATABASE_URL"] = env_url
        child = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(child)
        return child

    yield start
    for child in started:
        # The workers of a killed xdist controller sleep on in the same session.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.parametrize("xdist", [False, True], ids=["plain", "xdist"])
def test_killed_run_leaves_no_database(
    suite: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
    fkit_database_url: str,
    eventually: Callable[[Callable[[], bool], str], None],
    xdist: bool,
) -> None:
    args = ["-n", "2", "--dist", "each"] if xdist else []
    child = suite(*args, env_url=fkit_database_url)
    facts = wait_for_lines(tmp_path / "seen.jsonl", 2 if xdist else 1, child)
    names = sorted({f["database"] for f in facts} | {facts[0]["template"]})
    assert len(names) == (3 if xdist else 2)
    assert asyncio.run(existing(fkit_database_url, names)) == names
    # Only the pytest process (under xdist: the controller); xdist workers would sleep
    # on, so the reapers also watch the controller.
    os.kill(child.pid, signal.SIGKILL)
    eventually(
        lambda: asyncio.run(existing(fkit_database_url, names)) == [],
        f"the databases {names} to be dropped",
    )


def test_killed_xdist_run_leaves_no_throwaway_server(
    suite: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
    eventually: Callable[[Callable[[], bool], str], None],
) -> None:
    child = suite("-n", "2", "--dist", "each", env_url=None)
    facts = wait_for_lines(tmp_path / "seen.jsonl", 2, child)
    directories = [Path(f["data_dir"]).parent for f in facts]
    assert len(set(directories)) == 2  # a server per worker
    assert all(d.name.startswith("fkit-pg-") and d.is_dir() for d in directories)
    os.kill(child.pid, signal.SIGKILL)
    eventually(
        lambda: not any(d.exists() for d in directories),
        f"the servers in {directories} to be removed",
    )
