"""The public API is pinned, importing is cheap, and the installed plugin is discovered."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import fkit_metrics
from fkit_core import AsyncSessionManager, Plugin, create_async_session_manager, discover_plugins
from fkit_metrics import PostgresMetrics

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_pinned_and_sorted() -> None:
    assert fkit_metrics.__all__ == [
        "DEFAULT_BUCKETS",
        "ASGIApp",
        "MultiprocessMode",
        "PostgresMetrics",
        "__version__",
        "metrics_app",
    ]
    for name in fkit_metrics.__all__:
        assert getattr(fkit_metrics, name) is not None


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert fkit_metrics.__version__ == pyproject["project"]["version"]


def test_importing_and_constructing_does_not_import_prometheus_client() -> None:
    code = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "(ep,) = [e for e in entry_points(group='fkit.plugins') if e.name == 'prometheus']\n"
        "cls = ep.load()\n"
        "cls(prefix='x', service_name='s', labels={'env': 'p'}, buckets=[1, 2])\n"
        "assert 'prometheus_client' not in sys.modules, 'imported prometheus_client'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_installed_plugin_is_discovered_under_the_name_prometheus() -> None:
    found = {p.name: p for p in discover_plugins()}
    entry = found["prometheus"]
    assert entry.distribution == "fkit-metrics"
    assert entry.value == "fkit_metrics:PostgresMetrics"
    assert entry.error is None
    assert isinstance(entry.plugin, PostgresMetrics)
    assert isinstance(entry.plugin, Plugin)
    assert (entry.plugin.prefix, entry.plugin.labels) == ("fkit", {})


@pytest.mark.asyncio
async def test_installed_it_switches_itself_on_with_the_defaults(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FKIT_DISABLED_PLUGINS", raising=False)
    monkeypatch.delenv("FKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    async with AsyncSessionManager(db_url, name="autoloaded") as manager:
        (metrics,) = [p for p in manager.plugins if p.name == "prometheus"]
        assert isinstance(metrics, PostgresMetrics)
        from prometheus_client import REGISTRY

        assert metrics.registry is REGISTRY
        assert (
            REGISTRY.get_sample_value(
                "fkit_postgres_pool_size", {"manager": "autoloaded", "engine": "primary"}
            )
            == 5
        )


@pytest.mark.asyncio
async def test_a_configured_instance_replaces_the_installed_one(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import CollectorRegistry

    monkeypatch.delenv("FKIT_DISABLED_PLUGINS", raising=False)
    mine = PostgresMetrics(prefix="myapp", registry=CollectorRegistry())
    manager = create_async_session_manager(db_url, metrics=mine, autoload=True)
    async with manager:
        assert [p for p in manager.plugins if p.name == "prometheus"] == [mine]
        assert (
            mine.registry.get_sample_value(
                "myapp_postgres_pool_size", {"manager": "default", "engine": "primary"}
            )
            == 5
        )
