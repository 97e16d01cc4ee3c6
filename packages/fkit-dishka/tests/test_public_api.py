"""The public API is pinned, the version matches, and importing stays cheap."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import fkit_dishka

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_pinned_and_sorted() -> None:
    assert fkit_dishka.__all__ == [
        "AsyncDatabaseProvider",
        "AsyncUnitOfWorkProvider",
        "ErrorResponse",
        "PrometheusPostgresMetricsProvider",
        "ScopedTransaction",
        "TransactionMiddleware",
        "__version__",
        "commit_below_400",
    ]
    for name in fkit_dishka.__all__:
        assert getattr(fkit_dishka, name) is not None


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert fkit_dishka.__version__ == pyproject["project"]["version"]


def test_importing_does_not_import_the_optional_metrics() -> None:
    code = (
        "import sys\n"
        "import fkit_dishka\n"
        "fkit_dishka.AsyncDatabaseProvider(autoload=False)\n"
        "fkit_dishka.AsyncUnitOfWorkProvider()\n"
        "assert 'fkit_metrics' not in sys.modules, 'imported fkit_metrics'\n"
        "assert 'prometheus_client' not in sys.modules, 'imported prometheus_client'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
