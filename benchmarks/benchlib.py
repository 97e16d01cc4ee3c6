"""Helpers shared by the benchmark scripts (they import it from their own folder)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = ["database", "per_call_us", "run_for"]


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    """The database to measure on: ``url``, else FKIT_TEST_DATABASE_URL, else a throwaway one."""
    url = url or os.environ.get("FKIT_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from fkit_testing import launch_postgres

    with launch_postgres() as server:
        yield server.url


def per_call_us(fn: Callable[[], object], n: int) -> float:
    """Microseconds per call of ``fn``: the best of five runs of ``n`` calls."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / n / 1000)
    return best


async def run_for(seconds: float, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Calls per second of ``concurrency`` workers awaiting ``one(worker)`` for ``seconds``."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker(index: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one(index)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return done / (time.perf_counter() - start)
