"""The demo's use cases: a SERIALIZABLE transfer with retry and the settle-orders job.

They take the Unit of Work and nothing web-specific, so the endpoints, the background
loop and a command-line job can all call them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter

from fkit_core import IsolationLevel
from fkit_core.errors import DeadlockDetectedError, SerializationFailureError

if TYPE_CHECKING:
    from fkit_demo.uow import DemoTransaction, DemoUnitOfWork

__all__ = [
    "SETTLE_LOCK",
    "AccountNotFoundError",
    "DemoMetrics",
    "InsufficientFundsError",
    "TransferConflictError",
    "TransferError",
    "settle_orders",
    "settle_periodically",
    "transfer",
]

logger = logging.getLogger("fkit_demo")

SETTLE_LOCK = "settle-orders"


class DemoMetrics:
    """The service's own metrics, beside fkit's, in the same registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Counter(
            "fkit_demo_jobs",
            "Runs of the demo's background jobs, by job and result (done or skipped)",
            ["job", "result"],
            registry=registry,
        )


class TransferError(Exception):
    """A transfer that cannot be made; ``attempts`` is how many transactions it took."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class AccountNotFoundError(TransferError):
    """One of the accounts does not exist."""


class InsufficientFundsError(TransferError):
    """The source account holds less than the amount."""


class TransferConflictError(TransferError):
    """Every attempt the retry policy allows met a conflicting transaction."""


@dataclass(frozen=True, slots=True)
class TransferResult:
    """A committed transfer and the number of attempts it took (1 without conflicts)."""

    attempts: int


async def transfer(
    uow: DemoUnitOfWork, source: int, target: int, amount_cents: int, *, think: float = 0.0
) -> TransferResult:
    """Move money between two accounts in one SERIALIZABLE transaction, re-run on conflicts.

    Two transfers that touch the same account at the same time cannot both commit under
    SERIALIZABLE: PostgreSQL fails one with a serialization failure, and ``uow.run``
    re-runs the whole function in a fresh transaction (emitting ``RetryScheduled``, which
    fkit-metrics counts as ``fkit_postgres_retries_total``).

    Raises:
        AccountNotFoundError: An account does not exist.
        InsufficientFundsError: The source account holds less than ``amount_cents``.
        TransferConflictError: The conflicts outlasted the retry policy.
    """
    attempts = 0

    async def move(tx: DemoTransaction) -> TransferResult:
        nonlocal attempts
        attempts += 1
        accounts = await tx.accounts.get_many([source, target])
        if source not in accounts or target not in accounts:
            missing = sorted({source, target} - accounts.keys())
            raise AccountNotFoundError(f"no account {missing[0]}", attempts)
        if accounts[source].balance_cents < amount_cents:
            raise InsufficientFundsError(f"account {source} holds too little", attempts)
        if think:
            await asyncio.sleep(think)  # work between the read and the write
        accounts[source].balance_cents -= amount_cents
        accounts[target].balance_cents += amount_cents
        return TransferResult(attempts)

    try:
        return await uow.run(move, isolation_level=IsolationLevel.SERIALIZABLE)
    except (SerializationFailureError, DeadlockDetectedError) as exc:
        raise TransferConflictError(
            f"still conflicting after {attempts} attempts", attempts
        ) from exc


async def settle_orders(
    uow: DemoUnitOfWork, metrics: DemoMetrics, *, think: float = 0.0
) -> tuple[bool, int]:
    """Settle every pending order, unless another run is doing it right now.

    The transaction-scoped advisory lock makes runs exclusive across processes and
    machines without blocking anyone: a run that does not get it skips at once. The
    UPDATE touches pending orders only, so running the job again changes nothing.

    Returns:
        ``(skipped, settled)``.
    """
    async with uow.transaction() as tx:
        if not await tx.try_advisory_lock(SETTLE_LOCK):
            metrics.jobs.labels(SETTLE_LOCK, "skipped").inc()
            return True, 0
        settled = await tx.orders.settle_pending()
        if think:
            await asyncio.sleep(think)  # the lock is held until this transaction ends
    metrics.jobs.labels(SETTLE_LOCK, "done").inc()
    return False, settled


async def settle_periodically(uow: DemoUnitOfWork, metrics: DemoMetrics, every: float) -> None:
    """Run :func:`settle_orders` every ``every`` seconds until cancelled."""
    while True:
        await asyncio.sleep(every)
        try:
            skipped, settled = await settle_orders(uow, metrics)
        except Exception:
            # A failed run is retried at the next tick; the loop must outlive it.
            logger.exception("the settle-orders job failed")
        else:
            if settled or skipped:
                logger.info("settle-orders: skipped=%s settled=%d", skipped, settled)
