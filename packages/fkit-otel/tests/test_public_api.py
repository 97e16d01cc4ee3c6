"""The public API is pinned, importing is cheap, and the installed plugin is discovered."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fkit_otel_testkit import CANARY, PASSWORD, leaks
from sqlalchemy import text

import fkit_otel
from fkit_core import AsyncSessionManager, Plugin, discover_plugins
from fkit_otel import OtelPlugin

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_pinned_and_sorted() -> None:
    assert fkit_otel.__all__ == [
        "OtelPlugin",
        "TracedAsyncUnitOfWork",
        "__version__",
        "instrument_asyncpg",
        "instrument_sqlalchemy",
        "uninstrument_asyncpg",
        "uninstrument_sqlalchemy",
    ]
    for name in fkit_otel.__all__:
        assert getattr(fkit_otel, name) is not None
    assert set(fkit_otel.__all__) <= set(dir(fkit_otel))


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert fkit_otel.__version__ == pyproject["project"]["version"]


def test_dependencies_are_core_and_the_api_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["fkit-core", "opentelemetry-api"]
    extras = project["optional-dependencies"]
    # Never the contrib SQLAlchemy instrumentation: its `instruments` extra pins sqlalchemy<2.1.
    assert not any("instrumentation-sqlalchemy" in d for deps in extras.values() for d in deps)
    assert sorted(extras) == ["asyncpg", "sdk", "sqlalchemy"]


def test_loading_the_entry_point_and_constructing_imports_no_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "(ep,) = [e for e in entry_points(group='fkit.plugins') if e.name == 'otel']\n"
        "cls = ep.load()\n"
        "cls(service_name='s', statements=False)\n"
        "import fkit_otel\n"
        "bad = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_installed_plugin_is_discovered_under_the_name_otel() -> None:
    found = {p.name: p for p in discover_plugins()}
    entry = found["otel"]
    assert entry.distribution == "fkit-otel"
    assert entry.value == "fkit_otel._plugin:OtelPlugin"
    assert entry.error is None
    assert isinstance(entry.plugin, OtelPlugin)
    assert isinstance(entry.plugin, Plugin)
    assert entry.plugin.tracer_provider is None


@pytest.mark.asyncio
async def test_installed_it_switches_itself_on_with_the_global_provider(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FKIT_DISABLED_PLUGINS", raising=False)
    monkeypatch.delenv("FKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    # The global provider is never set in these tests (it can be set once per process):
    # the installed plugin traces into the no-op provider, and transactions just work.
    async with AsyncSessionManager(db_url, name="autoloaded") as manager:
        assert "otel" in [p.name for p in manager.plugins]
        async with manager.get_transaction() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1


def test_the_leak_check_catches_what_it_looks_for() -> None:
    # The conftest checks every span of the suite with this; it must not be vacuous.
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    span = tracer.start_span("ok", attributes={"a": f"x{CANARY}x"})
    span.add_event("e", {"b": PASSWORD})
    span.end()
    clean = tracer.start_span("clean", attributes={"a": "fine"})
    clean.end()
    assert len(leaks(span)) == 2  # type: ignore[arg-type]
    assert leaks(clean) == []  # type: ignore[arg-type]
