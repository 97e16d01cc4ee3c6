"""The sweep: stale test databases of dead runs go, everything else stays."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from fkit_testing._dbadmin import admin_engine, sweep_stale
from fkit_testing._reaper import process_start
from fkit_testing._run import RunIdentity

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def create(conn: AsyncConnection, name: str, comment: dict[str, object] | None) -> None:
    await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    if comment is not None:
        literal = json.dumps(comment).replace("'", "''")
        await conn.exec_driver_sql(f"COMMENT ON DATABASE \"{name}\" IS '{literal}'")


def owner(run: str, role: str, pid: int, host: str | None = None) -> dict[str, object]:
    return {
        "fkit-testing": 1,
        "role": role,
        "run": run,
        "host": host or socket.gethostname(),
        "pid": pid,
        "start": process_start(pid),
    }


@pytest.mark.asyncio
async def test_sweep_drops_only_what_dead_runs_left(fkit_database_url: str, driver: str) -> None:
    runs = {
        label: uuid.uuid4().hex[:10] for label in ("dead", "alive", "bare", "orphan", "far", "busy")
    }
    me, gone = int(__import__("os").getpid()), dead_pid()
    db = {label: RunIdentity(run, "gw0") for label, run in runs.items()}
    engine = admin_engine(fkit_database_url, driver)
    holder = admin_engine(fkit_database_url, driver)
    created: list[str] = []
    try:
        async with engine.connect() as conn, holder.connect() as busy_conn:
            plan: list[tuple[str, dict[str, object] | None]] = [
                # A dead worker and its template: both go.
                (db["dead"].database_name, owner(runs["dead"], "worker", gone)),
                (db["dead"].template_name, owner(runs["dead"], "template", gone)),
                # A live worker (this process) and its template stay.
                (db["alive"].database_name, owner(runs["alive"], "worker", me)),
                (db["alive"].template_name, owner(runs["alive"], "template", gone)),
                # Not fkit-testing's (no owner record): never touched.
                (db["bare"].database_name, None),
                # A template whose run has no worker database left goes.
                (db["orphan"].template_name, owner(runs["orphan"], "template", me)),
                # Another machine's worker: its liveness is unknown here, so it stays.
                (db["far"].database_name, owner(runs["far"], "worker", gone, "elsewhere.invalid")),
                # A dead worker of a run whose lock someone holds: left for later.
                (db["busy"].database_name, owner(runs["busy"], "worker", gone)),
            ]
            for name, comment in plan:
                await create(conn, name, comment)
                created.append(name)
            await busy_conn.execute(
                text("SELECT pg_advisory_lock(hashtextextended(:n, 0))"),
                {"n": db["busy"].lock_name},
            )
            stale = {db["dead"].database_name, db["dead"].template_name}
            stale.add(db["orphan"].template_name)
            dropped: list[str] = []
            # Another test's sweep on the same server (xdist runs the other driver's case
            # at the same time) may hold a run's lock for a moment, and a sweep skips a
            # locked run: sweep again until the stale ones are gone, whoever dropped them.
            for _ in range(50):
                dropped += await sweep_stale(conn)
                names = set(
                    (await conn.execute(text("SELECT datname FROM pg_database"))).scalars().all()
                )
                if not stale & names:
                    break
                await asyncio.sleep(0.1)
        assert not stale & names
        assert {n for n in dropped if n in created} <= stale
        for label in ("alive", "bare", "far", "busy"):
            assert db[label].database_name in names, label
        assert db["alive"].template_name in names
    finally:
        async with engine.connect() as conn:
            for name in created:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await engine.dispose()
        await holder.dispose()
