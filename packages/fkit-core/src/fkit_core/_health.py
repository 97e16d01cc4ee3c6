"""Health checks that never outlive their timeout and never leak a connection."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING

from sqlalchemy import text

from fkit_core._translate import translate_error

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["HealthReport", "check_engine"]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The result of one health check.

    Attributes:
        engine_name: The engine that was checked (``"primary"``, ``"replica-1"``, ...).
        healthy: Whether the query succeeded within the timeout.
        latency: Seconds the check took.
        error: ``"ErrorClass: message"`` when it failed (never contains the password).
    """

    engine_name: str
    healthy: bool
    latency: float
    error: str | None = None

    def __bool__(self) -> bool:
        return self.healthy


async def _run(engine: AsyncEngine, query: str, timeout: float) -> None:
    async with engine.connect() as conn:
        # The server stops the query too, not only the client: a hung check must not
        # keep a backend busy after we gave up on it.
        await conn.execute(
            text("SELECT set_config('statement_timeout', :ms, true)"),
            {"ms": f"{max(int(timeout * 1000), 1)}ms"},
        )
        await conn.execute(text(query))
        await conn.rollback()


async def check_engine(
    engine: AsyncEngine, engine_name: str, query: str, timeout: float
) -> HealthReport:
    """Run ``query`` on ``engine`` and report, returning within about ``timeout`` seconds.

    The check runs in its own task; past the timeout the task is cancelled and the
    report returned at once, whatever the server does. SQLAlchemy invalidates a
    connection that was interrupted mid-statement, so nothing half-used goes back to
    the pool.
    """
    started = perf_counter()
    task = asyncio.ensure_future(_run(engine, query, timeout))
    done, _ = await asyncio.wait({task}, timeout=timeout)
    latency = perf_counter() - started
    if not done:
        task.cancel()
        # Let the cancellation clean up in the background, briefly; a server that hangs
        # cannot hold the caller past its timeout.
        task.add_done_callback(_consume)
        return HealthReport(
            engine_name, False, latency, f"TimeoutError: no answer within {timeout}s"
        )
    exc = task.exception()
    if exc is None:
        return HealthReport(engine_name, True, latency)
    translated = translate_error(exc) or exc
    first_line = (str(translated).splitlines() or [""])[0]
    return HealthReport(engine_name, False, latency, f"{type(translated).__name__}: {first_line}")


def _consume(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(BaseException):
        task.exception()
