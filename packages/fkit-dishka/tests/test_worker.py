"""A background worker using the container directly: one REQUEST scope per job."""

# No `from __future__ import annotations`: dishka reads the providers' annotations.
import asyncio
from collections.abc import Awaitable, Callable

import pytest
from dishka import AsyncContainer, make_async_container
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fkit_core import AsyncSessionManager
from fkit_core.settings import BasePostgresConfig
from fkit_dishka import AsyncDatabaseProvider


async def worker(container: AsyncContainer, table: str, jobs: asyncio.Queue[int]) -> None:
    """Take jobs until cancelled; each runs in its own scope, hence its own transaction."""
    while True:
        job = await jobs.get()
        try:
            async with container() as request_container:
                session = await request_container.get(AsyncSession)
                await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": job})
                if job < 0:
                    raise ValueError(f"job {job} is invalid")
        except ValueError:
            pass  # a failed job is rolled back; the worker goes on
        finally:
            jobs.task_done()


@pytest.mark.asyncio
async def test_concurrent_workers_commit_their_jobs_and_roll_back_failed_ones(
    config: BasePostgresConfig,
    table: str,
    committed: Callable[[], Awaitable[list[int]]],
    connections: Callable[[], Awaitable[int]],
    connections_gone: Callable[[], Awaitable[bool]],
) -> None:
    container = make_async_container(AsyncDatabaseProvider(config, autoload=False))
    manager = await container.get(AsyncSessionManager)
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for job in [*range(1, 21), -1, -2]:
        jobs.put_nowait(job)
    workers = [asyncio.create_task(worker(container, table, jobs)) for _ in range(4)]
    await asyncio.wait_for(jobs.join(), 60)
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert await committed() == list(range(1, 21))
    assert manager.in_flight == 0

    await container.close()
    assert manager.state == "closed"
    assert await connections_gone()
