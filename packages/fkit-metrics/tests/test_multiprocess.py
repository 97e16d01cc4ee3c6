"""prometheus_client's multiprocess mode: two worker processes, one aggregated scrape."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from fkit_metrics import metrics_app

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import Scrape

# A worker as gunicorn or uvicorn would run it: PROMETHEUS_MULTIPROC_DIR is in its
# environment before prometheus_client is imported. It commits three transactions, then
# holds one connection until told to stop.
WORKER = """
import asyncio, sys
from sqlalchemy import text
from fkit_core import AsyncSessionManager
from fkit_metrics import PostgresMetrics

async def main(url: str) -> None:
    metrics = PostgresMetrics(service_name="mp")
    async with AsyncSessionManager(url, plugins=[metrics], autoload=False) as manager:
        for _ in range(3):
            async with manager.get_transaction() as session:
                await session.execute(text("SELECT 1"))
        async with manager.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main(sys.argv[1]))
"""


def _aggregate(path: Path, parse: type[Scrape]) -> Scrape:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return parse(generate_latest(registry).decode())


@pytest.mark.asyncio
async def test_metrics_of_two_processes_add_up(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parse: type[Scrape]
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            db_url,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), 120)  # hang guard only
            if line.strip() != b"ready":
                _, err = await worker.communicate()
                pytest.fail(f"worker failed: {err.decode()}")

        scraped = _aggregate(shared, parse)
        labels = {"manager": "default", "engine": "primary", "service": "mp"}
        assert scraped.value("fkit_postgres_transactions_total", outcome="commit", **labels) == 6
        # livesum: the pools of the live workers add up.
        assert scraped.value("fkit_postgres_pool_size", **labels) == 10
        assert scraped.value("fkit_postgres_pool_checked_out", **labels) == 2
        assert scraped.value("fkit_postgres_checkout_duration_seconds_count", **labels) == 10

        # metrics_app() reads the same directory when the variable is set.
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
        transport = httpx.ASGITransport(app=metrics_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            served = parse((await client.get("/metrics")).text)
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        assert served.value("fkit_postgres_pool_checked_out", **labels) == 2
        assert served.value("fkit_postgres_transactions_total", outcome="commit", **labels) == 6
    finally:
        for worker in workers:
            if worker.returncode is None:
                await asyncio.wait_for(worker.communicate(b"stop\n"), 120)
    assert [w.returncode for w in workers] == [0, 0]

    for worker in workers:  # what gunicorn's child_exit hook does
        mark_process_dead(worker.pid, str(shared))  # type: ignore[no-untyped-call]
    scraped = _aggregate(shared, parse)
    assert scraped.matching("fkit_postgres_pool_checked_out") == []
    assert scraped.value("fkit_postgres_transactions_total", outcome="commit") == 6
