"""A bounded concurrent workload, its tally, and the check of what reached the database.

Every logical transaction gets a unique id, written under a UNIQUE constraint. The tally
records what the caller was told (committed, outcome unknown, failed and how); the check
compares that with the rows present afterwards:

- lost: reported committed, not present (must be 0);
- duplicates: present more than once, or a ``UniqueViolationError`` (a retry re-ran work
  that had committed; must be 0);
- phantoms: reported failed (not "outcome unknown"), yet present (must be 0);
- outcome unknown (``CommitOutcomeUnknownError``): either is allowed; how many are
  present is reported;
- cancelled (``close()`` cancelled the work): before its COMMIT was sent it must be
  absent (rolled back); while its COMMIT was on its way the outcome is unknown, as with
  ``CommitOutcomeUnknownError`` (the caller only sees the cancellation): reported apart,
  with how many are present. A body marks the point with ``tally.committing.add(tx_id)``
  as its last statement before the block ends.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest
from sqlalchemy import text

from fkit_core.errors import (
    CommitOutcomeUnknownError,
    FkitError,
    ManagerClosedError,
    UniqueViolationError,
)
from fkit_core.events import RetryScheduled

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.pool import QueuePool

    from fkit_core import AsyncSessionManager

__all__ = [
    "Figures",
    "Tally",
    "checked_out",
    "count_rows",
    "run_load",
    "until",
    "verify",
    "within",
]

# Hang guard of a whole workload: it bounds itself long before this.
LOAD_HANG_GUARD = 60.0


T = TypeVar("T")


def checked_out(engine: AsyncEngine) -> int:
    """Connections of ``engine``'s pool in use now (every manager here has a queue pool)."""
    pool = cast("QueuePool", engine.pool)
    return pool.checkedout()


async def within(
    limit: float, what: str, work: Coroutine[Any, Any, T] | asyncio.Future[T]
) -> tuple[asyncio.Future[T], float]:
    """Hang guard: wait for ``work`` up to ``limit`` seconds, failing the test past it.

    Returns the finished task (its result or exception is the caller's to check) and the
    seconds waited, to print; never assert on them.
    """
    task = asyncio.ensure_future(work)
    started = time.perf_counter()
    done, _ = await asyncio.wait({task}, timeout=limit)
    if not done:
        task.cancel()
        pytest.fail(f"hang guard: {what} still running after {limit}s")
    return task, time.perf_counter() - started


async def until(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    """Hang guard: wait until ``condition()`` holds, failing the test after ``limit`` s."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"hang guard: gave up after {limit}s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Tally:
    """What the callers of the logical transactions were told."""

    scenario: str
    attempted: int = 0
    committed: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    committing: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)
    foreign: list[BaseException] = field(default_factory=list)
    retries: int = 0

    def watch_retries(self, manager: AsyncSessionManager) -> Callable[[], None]:
        """Count the retries ``uow.run`` schedules on ``manager``; returns how to stop."""

        def count(_: RetryScheduled) -> None:
            self.retries += 1

        return manager.bus.subscribe(RetryScheduled, count)

    def record_failure(self, tx_id: str, exc: BaseException) -> None:
        """Classify one failed logical transaction."""
        name = type(exc).__name__
        self.failures[name] += 1
        if isinstance(exc, CommitOutcomeUnknownError):
            self.unknown.add(tx_id)
            return
        self.failed[tx_id] = name
        if not isinstance(exc, FkitError):
            # Everything a database fault produces must reach the caller as an fkit error.
            self.foreign.append(exc)


async def run_load(
    tally: Tally,
    body: Callable[[str], Awaitable[Any]],
    *,
    workers: int,
    max_transactions: int,
    max_seconds: float,
    stop: asyncio.Event | None = None,
) -> None:
    """Run ``body(tx_id)`` from ``workers`` concurrent tasks until a bound is reached.

    Bounded in count (``max_transactions`` attempts in all) and in time (``max_seconds``);
    ``stop`` ends it earlier, and a worker refused by a closing manager stops. Each call
    is one logical transaction with a fresh id.
    """
    deadline = time.monotonic() + max_seconds

    def more() -> bool:
        if stop is not None and stop.is_set():
            return False
        return tally.attempted < max_transactions and time.monotonic() < deadline

    async def worker() -> None:
        while more():
            tx_id = uuid.uuid4().hex
            tally.attempted += 1
            # Each logical transaction runs in a task of its own: close() cancels the task
            # running the work, and that must end the transaction, not the worker.
            task = asyncio.ensure_future(body(tx_id))
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                task.cancel()
                raise
            if task.cancelled():
                tally.cancelled.add(tx_id)
                tally.failures["CancelledError"] += 1
            elif (exc := task.exception()) is not None:
                tally.record_failure(tx_id, exc)
                if isinstance(exc, ManagerClosedError):
                    return  # the manager is shutting down: this worker is done
                # A server that is down fails fast; don't spin on it.
                await asyncio.sleep(0.01)
            else:
                tally.committed.add(tx_id)

    async with asyncio.timeout(LOAD_HANG_GUARD):
        await asyncio.gather(*(worker() for _ in range(workers)))


async def count_rows(admin: AsyncSessionManager, table: str) -> dict[str, int]:
    """Rows per transaction id in ``table`` (column ``tx_id``)."""
    async with admin.get_transaction() as session:
        result = await session.execute(text(f"SELECT tx_id, count(*) FROM {table} GROUP BY tx_id"))
        return {str(tx_id): int(n) for tx_id, n in result}


@dataclass(frozen=True)
class Figures:
    """A scenario's figures, printed and asserted."""

    scenario: str
    attempted: int
    committed: int
    verified_present: int
    lost: int
    duplicates: int
    phantoms: int
    unknown: int
    unknown_present: int
    cancelled: int
    cancelled_present: int
    cancelled_at_commit: int
    cancelled_at_commit_present: int
    failures: dict[str, int]
    retries: int
    extra: dict[str, Any]

    def line(self) -> str:
        """One line for the test output."""
        extra = " ".join(f"{key}={value}" for key, value in self.extra.items())
        failures = ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items())) or "none"
        return (
            f"[faults] {self.scenario}: attempted={self.attempted} committed={self.committed} "
            f"verified_present={self.verified_present} lost={self.lost} "
            f"duplicates={self.duplicates} phantoms={self.phantoms} "
            f"outcome_unknown={self.unknown} (present {self.unknown_present}) "
            f"cancelled={self.cancelled} (present {self.cancelled_present}) "
            f"cancelled_at_commit={self.cancelled_at_commit} "
            f"(present {self.cancelled_at_commit_present}) "
            f"retries={self.retries} failures={{{failures}}} {extra}"
        ).rstrip()


async def verify(
    admin: AsyncSessionManager, table: str, tally: Tally, *, rows_per_tx: int = 1, **extra: Any
) -> Figures:
    """Compare the tally with the rows present, print the figures and return them.

    ``rows_per_tx``: how many rows one logical transaction writes; more is a duplicate.
    """
    present = await count_rows(admin, table)
    mine = tally.committed | tally.unknown | tally.cancelled | tally.failed.keys()
    duplicates = sum(n - rows_per_tx for k, n in present.items() if k in mine and n > rows_per_tx)
    duplicates += tally.failures.get(UniqueViolationError.__name__, 0)
    figures = Figures(
        scenario=tally.scenario,
        attempted=tally.attempted,
        committed=len(tally.committed),
        verified_present=len(tally.committed & present.keys()),
        lost=len(tally.committed - present.keys()),
        duplicates=duplicates,
        phantoms=len(tally.failed.keys() & present.keys()),
        unknown=len(tally.unknown),
        unknown_present=len(tally.unknown & present.keys()),
        cancelled=len(tally.cancelled - tally.committing),
        cancelled_present=len((tally.cancelled - tally.committing) & present.keys()),
        cancelled_at_commit=len(tally.cancelled & tally.committing),
        cancelled_at_commit_present=len(tally.cancelled & tally.committing & present.keys()),
        failures=dict(tally.failures),
        retries=tally.retries,
        extra=extra,
    )
    print(figures.line())
    return figures
