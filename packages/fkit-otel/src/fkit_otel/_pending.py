"""Failed transaction spans that wait one loop step, so a retry can be noted on them.

``uow.run()`` emits ``RetryScheduled`` right after a failed attempt's transaction ends,
with no ``await`` in between. A span that ended with a retryable error therefore ends on
the next event-loop step (at the time it really ended), and the retry handler records the
retry on it and ends it first.
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING

from fkit_core import translate_error
from fkit_core.errors import (
    ConnectionLostError,
    DeadlockDetectedError,
    FkitError,
    SerializationFailureError,
    TooManyConnectionsError,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["PendingEnd", "end_soon", "is_retryable", "pending_end"]

# Errors after which the Unit of Work's run() may retry the whole transaction: their span's
# end waits one event-loop step, so the RetryScheduled that follows can be recorded on it.
_RETRYABLE = (
    SerializationFailureError,
    DeadlockDetectedError,
    ConnectionLostError,
    TooManyConnectionsError,
)


class PendingEnd:
    """A failed transaction span whose end waits one loop step for a retry to be noted."""

    __slots__ = ("done", "end_time", "span", "sqlstate")

    def __init__(self, span: Span, sqlstate: str | None) -> None:
        self.span = span
        self.sqlstate = sqlstate
        self.end_time = time.time_ns()
        self.done = False

    def finish(self) -> None:
        """End the span at the time it really ended (idempotent)."""
        if not self.done:
            self.done = True
            self.span.end(end_time=self.end_time)


_PENDING: ContextVar[PendingEnd | None] = ContextVar("fkit_otel_pending_end", default=None)


def pending_end() -> PendingEnd | None:
    """The current task's failed transaction span still waiting to end, if any."""
    pending = _PENDING.get()
    return pending if pending is not None and not pending.done else None


def is_retryable(exc: BaseException) -> bool:
    """Whether ``run()`` may retry the transaction that ``exc`` ended."""
    error = exc if isinstance(exc, FkitError) else translate_error(exc)
    return isinstance(error, _RETRYABLE)


def end_soon(span: Span, sqlstate: str | None) -> None:
    """End ``span`` on the next loop step unless a retry ends it first."""
    pending = PendingEnd(span, sqlstate)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        pending.finish()
        return
    # No await separates the end of a transaction from the RetryScheduled that run() emits
    # for it, so one loop step is enough for the retry to be recorded on this span.
    loop.call_soon(pending.finish)
    _PENDING.set(pending)
