"""Fixtures for fkit-metrics' tests: a real PostgreSQL, a fresh registry, and a scraper.

Every test scrapes its own ``CollectorRegistry`` with ``generate_latest`` and parses the
text with prometheus_client's parser, as Prometheus would read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fkit_core import AsyncSessionManager, BasePostgresConfig, PoolSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from prometheus_client.samples import Sample

    from fkit_core import Plugin


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    """Each database test runs on every supported driver (FKIT_TEST_DRIVER narrows it)."""
    return fkit_each_driver


@pytest.fixture
def db_url(fkit_each_driver_url: str) -> str:
    return fkit_each_driver_url


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test: no test sees another's series."""
    return CollectorRegistry()


class Scrape:
    """One parsed exposition of a registry."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[Sample] = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def matching(self, name: str, **labels: str) -> list[Sample]:
        return [
            s
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float | None:
        """The sum of the samples named ``name`` whose labels include ``labels``, or None."""
        found = self.matching(name, **labels)
        return sum(s.value for s in found) if found else None


@pytest.fixture
def parse() -> type[Scrape]:
    """Parse an exposition text: ``parse(text).value(name, **labels)``."""
    return Scrape


@pytest.fixture
def scrape(registry: CollectorRegistry) -> Callable[[], Scrape]:
    return lambda: Scrape(generate_latest(registry).decode())


@pytest_asyncio.fixture
async def make_manager(db_url: str) -> AsyncIterator[Callable[..., AsyncSessionManager]]:
    """Build managers on the test database (plugins explicit, autoload off); closed at the end."""
    made: list[AsyncSessionManager] = []

    def factory(
        *plugins: Plugin,
        name: str = "default",
        url: str | None = None,
        **config: Any,
    ) -> AsyncSessionManager:
        pool = config.pop("pool", None)
        settings = BasePostgresConfig(url=url or db_url, pool=pool or PoolSettings(), **config)
        manager = AsyncSessionManager(settings, plugins=list(plugins), autoload=False, name=name)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        await manager.close(timeout=5)
