"""Fixtures for fkit-otel's tests: a real PostgreSQL, a per-test tracer provider, span trees.

Every test gets its own SDK ``TracerProvider`` with an ``InMemorySpanExporter`` and passes
it explicitly (the global provider can be set only once per process, so it is never
set). When a test ends, every span it produced is checked for the password of the
database URL (the managers here connect with one, which trust authentication ignores)
and for the parameter values the tests bind, which all contain ``CANARY``: together the
tests check every span the suite produces.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.engine import make_url

from fkit_core import AsyncSessionManager, BasePostgresConfig
from fkit_otel import OtelPlugin

# The shared helpers module (uniquely named, so no other package's tests clash with it).
sys.path.insert(0, str(Path(__file__).parent))

from fkit_otel_testkit import PASSWORD, Spans, leaks

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from fkit_core import Plugin


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    """Each database test runs on every supported driver (FKIT_TEST_DRIVER narrows it)."""
    return fkit_each_driver


@pytest.fixture
def db_url(fkit_each_driver_url: str) -> str:
    """The test database with the driver and a password that must never show in a span."""
    return make_url(fkit_each_driver_url).set(password=PASSWORD).render_as_string(False)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider of this test's own; its spans are checked for leaks when the test ends."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()
    found = [leak for span in exporter.get_finished_spans() for leak in leaks(span)]
    assert not found, "spans carry parameter values or secrets:\n" + "\n".join(found)


@pytest.fixture
def spans(exporter: InMemorySpanExporter, tracer_provider: TracerProvider) -> Spans:
    return Spans(exporter)


@pytest.fixture
def plugin(tracer_provider: TracerProvider) -> OtelPlugin:
    return OtelPlugin(tracer_provider=tracer_provider)


@pytest_asyncio.fixture
async def make_manager(db_url: str) -> AsyncIterator[Callable[..., AsyncSessionManager]]:
    """Build managers on the test database (plugins explicit, autoload off); closed at the end."""
    made: list[AsyncSessionManager] = []

    def factory(*plugins: Plugin, name: str = "default", **config: Any) -> AsyncSessionManager:
        settings = BasePostgresConfig(url=config.pop("url", db_url), **config)
        manager = AsyncSessionManager(settings, plugins=list(plugins), autoload=False, name=name)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        await manager.close(timeout=5)


@pytest_asyncio.fixture
async def manager(
    make_manager: Callable[..., AsyncSessionManager], plugin: OtelPlugin
) -> AsyncSessionManager:
    """A started manager with the otel plugin on this test's provider."""
    m = make_manager(plugin)
    await m.start()
    return m
