"""Driver-level asyncpg spans through ``opentelemetry-instrumentation-asyncpg`` (an extra)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from fkit_core.errors import MissingDependencyError

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["instrument_asyncpg", "uninstrument_asyncpg"]

_LOCK = threading.Lock()


def _instrumentor() -> Any:
    try:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    except ImportError as exc:
        raise MissingDependencyError("asyncpg tracing", "fkit-otel[asyncpg]") from exc
    # A process-wide singleton; constructing it again only resets this option, and
    # parameter values must never be captured.
    return AsyncPGInstrumentor(capture_parameters=False)  # type: ignore[no-untyped-call]


def instrument_asyncpg(*, tracer_provider: TracerProvider | None = None) -> bool:
    """Trace asyncpg's own calls (``fetch``, ``execute``, prepared statements) process-wide.

    Idempotent: the instrumentation patches the asyncpg module once, with the tracer
    provider of the first call. Parameter values are never captured. Its spans duplicate
    the statement spans of :func:`instrument_sqlalchemy` one level lower, so the plugin
    calls it only when configured with ``OtelPlugin(asyncpg=True)``.

    Args:
        tracer_provider: Where spans go; the global provider when None.

    Returns:
        True if this call instrumented asyncpg, False if it already was.

    Raises:
        MissingDependencyError: ``fkit-otel[asyncpg]`` is not installed.
    """
    instrumentor = _instrumentor()
    with _LOCK:
        if instrumentor.is_instrumented_by_opentelemetry:
            return False
        instrumentor.instrument(tracer_provider=tracer_provider)
        return True


def uninstrument_asyncpg() -> bool:
    """Undo :func:`instrument_asyncpg`.

    Returns:
        True if asyncpg was instrumented.

    Raises:
        MissingDependencyError: ``fkit-otel[asyncpg]`` is not installed.
    """
    instrumentor = _instrumentor()
    with _LOCK:
        if not instrumentor.is_instrumented_by_opentelemetry:
            return False
        instrumentor.uninstrument()
        return True
