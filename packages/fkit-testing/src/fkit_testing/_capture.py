"""Capturing what a test's session managers report: bus events, metrics and spans."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, overload

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from fkit_core import AsyncSessionManager
    from fkit_core.events import Event

__all__ = [
    "CAPTURE_FIXTURES",
    "CAPTURE_KEY",
    "CapturePlugin",
    "CapturedEvents",
    "captured_events",
    "metrics_plugin",
    "metrics_registry",
    "otel_plugin",
    "span_exporter",
]

E = TypeVar("E")

CAPTURE_KEY = pytest.StashKey[dict[str, Any]]()
"""Where the capture fixtures leave their plugins for ``fkit_manager_plugins``."""
# Fixtures whose plugin fkit_manager gets when the test asks for them.
CAPTURE_FIXTURES = ("captured_events", "metrics_registry", "span_exporter")


class CapturePlugin:
    """An fkit plugin that copies every event of the managers it is set up on into a list."""

    name = "fkit-testing-capture"
    requires_core = ">=0.1,<0.2"

    def __init__(self, sink: Callable[[Event], None]) -> None:
        self._sink = sink

    def setup(self, manager: AsyncSessionManager) -> None:
        """Subscribe to everything on ``manager``'s bus (before its engines exist)."""
        manager.bus.subscribe_all(self._sink)


class CapturedEvents:
    """Every bus event of the test's session managers, in the order they were emitted.

    ``fkit_manager`` reports here by itself. A manager the test builds reports here when
    it gets :attr:`plugin` (``plugins=[captured_events.plugin]``) or is passed to
    :meth:`watch`. It behaves as a read-only list of events.

    Example:
        >>> async def test_commit_is_reported(fkit_manager, captured_events):  # doctest: +SKIP
        ...     async with fkit_manager.get_transaction():
        ...         pass
        ...     [ended] = captured_events.of_type(TransactionEnded)
        ...     assert ended.outcome == "commit"
    """

    def __init__(self) -> None:
        self._events: list[Event] = []
        self.plugin = CapturePlugin(self._events.append)
        """The plugin to pass to managers the test creates: ``plugins=[events.plugin]``."""

    def watch(self, manager: AsyncSessionManager) -> Callable[[], None]:
        """Capture the events of a manager that exists already; returns an unsubscribe."""
        return manager.bus.subscribe_all(self._events.append)

    def of_type(self, *event_types: type[E]) -> list[E]:
        """The captured events that are instances of any of ``event_types``."""
        return [event for event in self._events if isinstance(event, event_types)]

    def names(self) -> list[str]:
        """The class names of the captured events, in order (handy in assertions)."""
        return [type(event).__name__ for event in self._events]

    def clear(self) -> None:
        """Forget what was captured so far."""
        self._events.clear()

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return self._events[index]

    def __repr__(self) -> str:
        return f"<CapturedEvents {self.names()!r}>"


def metrics_plugin() -> tuple[Any, Any]:
    """A fresh ``CollectorRegistry`` and a ``fkit_metrics.PostgresMetrics`` writing into it.

    Raises:
        MissingDependencyError: fkit-metrics (which brings prometheus-client) is missing.
    """
    from fkit_core.errors import MissingDependencyError

    try:
        from prometheus_client import CollectorRegistry

        from fkit_metrics import PostgresMetrics
    except ImportError as exc:
        raise MissingDependencyError("the metrics_registry fixture", "fkit-metrics") from exc
    registry = CollectorRegistry()
    return registry, PostgresMetrics(registry=registry)


def otel_plugin() -> tuple[Any, Any, Any]:
    """An in-memory span exporter, its tracer provider, and an ``OtelPlugin`` using it.

    Raises:
        MissingDependencyError: fkit-otel or the OpenTelemetry SDK is not installed.
    """
    from fkit_core.errors import MissingDependencyError

    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        from fkit_otel import OtelPlugin
    except ImportError as exc:
        raise MissingDependencyError("the span_exporter fixture", "fkit-otel[sdk]") from exc
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider, OtelPlugin(tracer_provider=provider)


def _capture_plugins(request: pytest.FixtureRequest) -> dict[str, Any]:
    stash: pytest.Stash = request.node.stash
    if CAPTURE_KEY not in stash:
        stash[CAPTURE_KEY] = {}
    return stash[CAPTURE_KEY]


@pytest.fixture
def captured_events(request: pytest.FixtureRequest) -> CapturedEvents:
    """Every bus event of ``fkit_manager`` (and of managers given ``captured_events.plugin``)."""
    events = CapturedEvents()
    _capture_plugins(request)["captured_events"] = events.plugin
    return events


@pytest.fixture
def metrics_registry(request: pytest.FixtureRequest) -> Any:
    """A fresh ``prometheus_client.CollectorRegistry`` that ``fkit_manager``'s metrics use.

    ``fkit_manager`` gets a ``fkit_metrics.PostgresMetrics(registry=metrics_registry)``.

    Raises:
        MissingDependencyError: fkit-metrics is not installed.
    """
    registry, plugin = metrics_plugin()
    _capture_plugins(request)["metrics_registry"] = plugin
    return registry


@pytest.fixture
def span_exporter(request: pytest.FixtureRequest) -> Iterator[Any]:
    """An OpenTelemetry ``InMemorySpanExporter`` receiving ``fkit_manager``'s spans.

    ``fkit_manager`` gets a ``fkit_otel.OtelPlugin`` with a tracer provider that exports
    every finished span here (``span_exporter.get_finished_spans()``).

    Raises:
        MissingDependencyError: fkit-otel or the OpenTelemetry SDK is not installed.
    """
    exporter, provider, plugin = otel_plugin()
    _capture_plugins(request)["span_exporter"] = plugin
    yield exporter
    provider.shutdown()
