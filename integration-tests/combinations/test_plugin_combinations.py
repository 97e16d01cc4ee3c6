"""Plugin combinations: exactly the installed plugins are discovered, and each one works.

The nox sessions ``combo-<name>`` install an exact set of fkit distributions and tell
this module what they installed: ``FKIT_EXPECT_PACKAGES`` (the fkit distributions) and
``FKIT_EXPECT_PLUGINS`` (the ``fkit.plugins`` names they register). Unset, the module
expects the workspace's development environment (every member of the root ``dev``
group, and the plugins those register). Only the checks of the expected plugins and
packages are generated, so nothing is skipped: what a session does not install is
proven absent by the exact-set tests instead.

Every manager here starts with plugin autoload on: that is the behaviour under test.
"""

from __future__ import annotations

import os
import re
import tomllib
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import literal, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, discover_plugins

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ROOT = Path(__file__).resolve().parents[2]

# The plugins the workspace's dev group installs (integration-tests/sample-plugin too).
WORKSPACE_PLUGINS = "locks,otel,prometheus,sample,types"


def _workspace_packages() -> str:
    group = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    names = (re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in group)
    return ",".join(n for n in names if n.startswith("fkit-"))


def _expected(variable: str, default: str) -> frozenset[str]:
    value = os.environ.get(variable)
    raw = default if value is None else value
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


EXPECT_PLUGINS = _expected("FKIT_EXPECT_PLUGINS", WORKSPACE_PLUGINS)
EXPECT_PACKAGES = _expected("FKIT_EXPECT_PACKAGES", _workspace_packages())


@pytest.fixture
def url(fkit_database_url: str, fkit_driver: str) -> str:
    return (
        make_url(fkit_database_url)
        .set(drivername=f"postgresql+{fkit_driver}")
        .render_as_string(hide_password=False)
    )


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's shell must not switch discovery off for a test of discovery.
    monkeypatch.delenv("FKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("FKIT_DISABLED_PLUGINS", raising=False)


def _name() -> str:
    return f"combo-{uuid.uuid4().hex[:8]}"


def test_exactly_the_expected_fkit_distributions_are_installed() -> None:
    installed = {
        str(d.metadata["Name"]).lower()
        for d in metadata.distributions()
        if str(d.metadata["Name"]).lower().startswith("fkit-")
    }
    assert installed == EXPECT_PACKAGES


def test_discovery_finds_exactly_the_expected_plugins_and_all_load() -> None:
    found = discover_plugins()
    assert {p.name for p in found} == EXPECT_PLUGINS
    assert [(p.name, p.error) for p in found if p.error is not None] == []


@pytest.mark.asyncio
async def test_a_manager_with_autoload_sets_up_every_discovered_plugin(url: str) -> None:
    async with AsyncSessionManager(url, autoload=True, name=_name()) as manager:
        assert {p.name for p in manager.plugins} == EXPECT_PLUGINS
        async with manager.get_transaction() as session:
            assert await session.scalar(text("select 1")) == 1


async def _locks_work(url: str) -> None:
    from fkit_locks import try_advisory_xact_lock
    from fkit_locks._plugin import plugin

    async with AsyncSessionManager(url, autoload=True, name=_name()) as manager:
        assert plugin.is_set_up(manager)
        key = f"combo:{uuid.uuid4().hex}"
        async with manager.get_transaction() as session:
            assert await try_advisory_xact_lock(session, key) is True
            # Another connection cannot take it while this transaction holds it.
            async with manager.get_transaction() as other:
                assert await try_advisory_xact_lock(other, key) is False


async def _types_work(url: str) -> None:
    from fkit_types import TypesSession, json_dumps

    async with AsyncSessionManager(url, autoload=True, name=_name()) as manager:
        assert manager.engine.sync_engine.dialect._json_serializer is json_dumps  # type: ignore[attr-defined]
        async with manager.get_transaction() as session:
            assert isinstance(session.sync_session, TypesSession)
            # The stdlib serializer refuses a datetime; the plugin's writes ISO 8601 UTC.
            value = literal({"at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)}, type_=JSONB)
            assert await session.scalar(select(value["at"].astext)) == "2025-01-02T03:04:05Z"


async def _prometheus_works(url: str) -> None:
    from prometheus_client import REGISTRY

    name = _name()
    manager = AsyncSessionManager(url, autoload=True, name=name)
    async with manager, manager.get_transaction() as session:
        await session.execute(text("select 1"))
    # The installed plugin uses the defaults: prefix fkit, the global registry.
    labels = {"manager": name, "engine": "primary", "kind": "transaction", "outcome": "commit"}
    assert REGISTRY.get_sample_value("fkit_postgres_transactions_total", labels) == 1


async def _otel_works(url: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from fkit_otel import OtelPlugin

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    mine = OtelPlugin(tracer_provider=provider)
    async with AsyncSessionManager(url, plugins=[mine], autoload=True, name=_name()) as manager:
        # The explicit instance replaces the discovered one; the others are still there.
        assert {p.name for p in manager.plugins} == EXPECT_PLUGINS
        assert [p for p in manager.plugins if p.name == "otel"] == [mine]
        async with AsyncSQLAlchemyUnitOfWork(manager).transaction() as tx:
            await tx.session.execute(text("select 1"))
    assert [s.name for s in exporter.get_finished_spans()].count("uow.transaction") == 1


async def _dishka_works(url: str) -> None:
    from dishka import make_async_container
    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_core.settings import BasePostgresConfig
    from fkit_dishka import AsyncDatabaseProvider

    provider = AsyncDatabaseProvider(BasePostgresConfig(url=url), name=_name())
    container = make_async_container(provider)
    manager = await container.get(AsyncSessionManager)
    try:
        assert {p.name for p in manager.plugins} == EXPECT_PLUGINS
        async with container() as request:
            session = await request.get(AsyncSession)
            assert await session.scalar(text("select 1")) == 1
    finally:
        await container.close()
    assert manager.state == "closed"


async def _di_works(url: str) -> None:
    from fkit_core.settings import BasePostgresConfig
    from fkit_di import DatabaseContainer

    container = DatabaseContainer(postgres_config=BasePostgresConfig(url=url))
    await container.init_resources()  # type: ignore[misc]
    manager = container.session_manager()
    try:
        assert {p.name for p in manager.plugins} == EXPECT_PLUGINS
        async with container.uow().transaction() as tx:
            assert await tx.session.scalar(text("select 1")) == 1
    finally:
        await container.shutdown_resources()  # type: ignore[misc]
    assert manager.state == "closed"


async def _core_works(url: str) -> None:
    from fkit_core.events import ManagerStarted

    manager = AsyncSessionManager(url, autoload=True, name=_name())
    started: list[ManagerStarted] = []
    manager.bus.subscribe(ManagerStarted, started.append)
    async with manager, AsyncSQLAlchemyUnitOfWork(manager).transaction() as tx:
        assert await tx.session.scalar(text("select 1")) == 1
    # The bus announces exactly the plugins that were set up, in name order.
    assert [event.plugins for event in started] == [tuple(sorted(EXPECT_PLUGINS))]


async def _sample_works(url: str) -> None:
    from fkit_sample_plugin import plugin

    async with AsyncSessionManager(url, autoload=True, name=_name()) as manager:
        assert manager in plugin.managers


PLUGIN_CHECKS: dict[str, Callable[[str], Awaitable[None]]] = {
    "locks": _locks_work,
    "otel": _otel_works,
    "prometheus": _prometheus_works,
    "sample": _sample_works,
    "types": _types_work,
}
# Distributions that are not plugins, checked with autoload on (fkit-core is always there).
PACKAGE_CHECKS: dict[str, Callable[[str], Awaitable[None]]] = {
    "fkit-core": _core_works,
    "fkit-di": _di_works,
    "fkit-dishka": _dishka_works,
}


def test_every_expected_plugin_has_a_check() -> None:
    assert set(EXPECT_PLUGINS - PLUGIN_CHECKS.keys()) == set()


CHECKS: list[Any] = [
    pytest.param(PLUGIN_CHECKS[name], id=f"plugin-{name}")
    for name in sorted(EXPECT_PLUGINS & PLUGIN_CHECKS.keys())
] + [
    pytest.param(PACKAGE_CHECKS[name], id=name)
    for name in sorted(EXPECT_PACKAGES & PACKAGE_CHECKS.keys())
]


@pytest.mark.asyncio
@pytest.mark.parametrize("check", CHECKS)
async def test_each_installed_plugin_works_when_autoloaded(
    check: Callable[[str], Awaitable[None]], url: str
) -> None:
    await check(url)
