"""Retrying transient failures: a backoff policy, a decorator, and the rules for what is safe."""

from __future__ import annotations

import asyncio
import functools
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from fkit_core._owner import DETACHED, ENGINE_INFO_KEY, WorkOwner, owner_of
from fkit_core._translate import translate_error
from fkit_core.errors import (
    CommitOutcomeUnknownError,
    ConfigurationError,
    ConnectionLostError,
    DeadlockDetectedError,
    FkitError,
    PoolTimeoutError,
    SerializationFailureError,
    TooManyConnectionsError,
)
from fkit_core.events import RetryScheduled

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["RetryConfig", "is_conflict", "is_transient", "retry_async_connection", "schedule_retry"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """How often and how patiently to retry.

    The delay before attempt ``n + 1`` is ``initial_delay * exponential_base ** (n - 1)``,
    capped at ``max_delay``; with ``jitter`` it is drawn from the upper half of that
    (``[d/2, d]``) so that clients that failed together do not retry together.

    Attributes:
        max_attempts: Attempts in all, the first included (at least 1).
        initial_delay: Seconds before the first retry.
        max_delay: Upper bound of any delay.
        exponential_base: Growth factor of the delay (at least 1).
        jitter: Randomise each delay.
        retry_pool_timeout: Also retry when no pooled connection was free in time.
    """

    max_attempts: int = 3
    initial_delay: float = 0.1
    max_delay: float = 10.0
    exponential_base: float = 2.0
    jitter: bool = True
    retry_pool_timeout: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.max_attempts < 1:
            problems.append(f"max_attempts={self.max_attempts!r} must be at least 1")
        if self.initial_delay < 0:
            problems.append(f"initial_delay={self.initial_delay!r} must not be negative")
        if self.max_delay < self.initial_delay:
            problems.append(f"max_delay={self.max_delay!r} must be at least initial_delay")
        if self.exponential_base < 1:
            problems.append(f"exponential_base={self.exponential_base!r} must be at least 1")
        if problems:
            raise ConfigurationError("invalid RetryConfig: " + "; ".join(problems))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
        base = min(self.max_delay, self.initial_delay * self.exponential_base ** (attempt - 1))
        return random.uniform(base / 2, base) if self.jitter else base  # noqa: S311 - not crypto


def _fkit_error(exc: BaseException) -> BaseException:
    return exc if isinstance(exc, FkitError) else (translate_error(exc) or exc)


def is_transient(exc: BaseException, config: RetryConfig | None = None) -> bool:
    """Whether a fresh connection may well not see ``exc`` again.

    Connection loss, server shutdown and too many connections are transient; a pool
    timeout is when ``config.retry_pool_timeout`` says so. A connection lost during
    COMMIT is never transient: the work may have been committed.
    """
    error = _fkit_error(exc)
    if isinstance(error, CommitOutcomeUnknownError):
        return False
    if isinstance(error, PoolTimeoutError):
        return bool(config and config.retry_pool_timeout)
    return isinstance(error, (ConnectionLostError, TooManyConnectionsError))


def is_conflict(exc: BaseException) -> bool:
    """Whether re-running the whole transaction may succeed (40001 or 40P01)."""
    return isinstance(_fkit_error(exc), (SerializationFailureError, DeadlockDetectedError))


async def schedule_retry(
    owner: WorkOwner,
    config: RetryConfig,
    attempt: int,
    exc: BaseException,
    operation: str,
    engine_name: str = "primary",
) -> None:
    """Emit ``RetryScheduled`` and sleep the backoff delay for ``attempt``."""
    delay = config.delay(attempt)
    if owner.bus.wants(RetryScheduled):
        reason = type(_fkit_error(exc)).__name__
        owner.bus.emit(RetryScheduled(owner.name, attempt, delay, reason, operation, engine_name))
    await asyncio.sleep(delay)


def _find_session(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncSession | None:
    for value in (*args, *kwargs.values()):
        if hasattr(value, "sync_session") and hasattr(value, "in_transaction"):
            return value  # type: ignore[no-any-return]
    return None


def _find_owner(
    args: tuple[Any, ...], kwargs: dict[str, Any], session: AsyncSession | None
) -> WorkOwner:
    if session is not None:
        return owner_of(session)
    for value in (*args, *kwargs.values()):
        if hasattr(value, "enter_work") and hasattr(value, "bus"):
            return value  # type: ignore[no-any-return]
    return DETACHED


def retry_async_connection(
    config: RetryConfig | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Retry an async function on transient connection errors.

    Only transient errors are retried (see :func:`is_transient`); a syntax error, a
    missing table or an integrity error is raised at once. Each retry emits
    ``RetryScheduled`` on the bus of the manager the function's session (or manager)
    argument belongs to.

    When the function receives a session, it is retried only if that session had no
    transaction open when the function was called, so the failed attempt was all the
    transaction held: before the next attempt the session is rolled back and gets a
    fresh connection. Work done earlier in an open transaction is never silently
    dropped; such a call is not retried and its error is raised.

    Args:
        config: The retry policy; ``RetryConfig()`` when None.

    Returns:
        A decorator.
    """
    policy = config or RetryConfig()

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        operation = getattr(fn, "__qualname__", repr(fn))

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            session = _find_session(args, kwargs)
            owner = _find_owner(args, kwargs, session)
            fresh = session is None or not session.in_transaction()
            attempt = 1
            while True:
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    if not fresh or attempt >= policy.max_attempts or not is_transient(exc, policy):
                        raise
                    if session is not None:
                        await session.rollback()
                    engine_name = (
                        session.info.get(ENGINE_INFO_KEY, "primary") if session else "primary"
                    )
                    await schedule_retry(owner, policy, attempt, exc, operation, engine_name)
                    attempt += 1

        return wrapper

    return decorate
