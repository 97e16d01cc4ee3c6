"""Capture helpers: bus events of every manager of a test; missing plugins named.

The metrics and span capture with their plugins installed is proven in
``integration-tests/test_testing_capture.py``: this package's own environment does not
install fkit-metrics or fkit-otel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fkit_core import AsyncSessionManager
from fkit_core.events import ManagerClosed, ManagerStarted, TransactionEnded

if TYPE_CHECKING:
    from fkit_testing import CapturedEvents, WorkerDatabase

pytest_plugins = ["pytester"]


@pytest.mark.asyncio
async def test_captured_events_sees_fkit_manager_from_its_start(
    fkit_manager: AsyncSessionManager, captured_events: CapturedEvents
) -> None:
    # From the manager's start: its plugins are set up before its engines exist.
    assert captured_events.names() == ["EngineCreated", "ManagerStarted"]
    assert isinstance(captured_events[1], ManagerStarted)
    captured_events.clear()
    async with fkit_manager.get_transaction():
        pass
    with pytest.raises(RuntimeError):
        async with fkit_manager.get_transaction():
            raise RuntimeError
    ended = captured_events.of_type(TransactionEnded)
    assert [e.outcome for e in ended] == ["commit", "error"]
    assert len(captured_events) == 4
    assert captured_events[-1] is ended[-1]
    assert captured_events[:1] == [captured_events[0]]
    assert "TransactionStarted" in repr(captured_events)


@pytest.mark.asyncio
async def test_captured_events_sees_managers_the_test_builds(
    captured_events: CapturedEvents, fkit_worker_database: WorkerDatabase, fkit_driver: str
) -> None:
    url = fkit_worker_database.sqlalchemy_url(fkit_driver)
    given = AsyncSessionManager(url, plugins=[captured_events.plugin], autoload=False, name="a")
    async with given, given.get_transaction():
        pass
    watched = AsyncSessionManager(url, plugins=[], autoload=False, name="b")
    stop = captured_events.watch(watched)
    async with watched, watched.get_transaction():
        pass
    stop()
    ends = [(e.manager, type(e).__name__) for e in captured_events.of_type(TransactionEnded)]
    assert ends == [("a", "TransactionEnded"), ("b", "TransactionEnded")]
    assert {e.manager for e in captured_events.of_type(ManagerClosed)} == {"a", "b"}


MISSING_SUITE = """
import pytest


def test_metrics(metrics_registry):
    pass


def test_spans(span_exporter):
    pass
"""

# A conftest that makes the plugins' packages unimportable, as if not installed.
NOT_INSTALLED = """
import sys

sys.modules["fkit_metrics"] = None
sys.modules["fkit_otel"] = None
"""


def test_capture_fixtures_name_the_missing_distribution(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(NOT_INSTALLED)
    pytester.makepyfile(MISSING_SUITE)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*MissingDependencyError: the metrics_registry fixture needs 'fkit-metrics'*"
            "pip install fkit-metrics*",
            "*MissingDependencyError: the span_exporter fixture needs 'fkit-otel?sdk?'*",
        ]
    )
