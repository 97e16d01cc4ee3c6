"""uuid7(): RFC 9562 layout, time-ordered, strictly increasing within a process."""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING

from fkit_types import _uuid, uuid7

if TYPE_CHECKING:
    import pytest


def _millis(value: uuid.UUID) -> int:
    return value.int >> 80


def test_layout_is_version_7_rfc_variant() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= _millis(value) <= after


def test_values_strictly_increase_within_a_millisecond() -> None:
    values = [uuid7() for _ in range(20_000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    # Many share a millisecond: the counter, not the clock, keeps them ordered.
    assert len({_millis(v) for v in values}) < len(values)
    assert [v.bytes for v in values] == sorted(v.bytes for v in values)  # as PostgreSQL sorts


def test_threads_get_unique_values() -> None:
    results: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def work(index: int) -> None:
        results[index].extend(uuid7() for _ in range(5_000))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [v for chunk in results for v in chunk]
    assert len(set(every)) == len(every)
    for chunk in results:
        assert chunk == sorted(chunk)


def test_a_clock_stepping_back_keeps_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [2_000_000_000_000 * 1_000_000]
    monkeypatch.setattr(_uuid, "time", SimpleNamespace(time_ns=lambda: now[0]))
    first = uuid7()
    now[0] -= 5_000 * 1_000_000  # five seconds back
    second = uuid7()
    assert second > first
    assert _millis(second) == _millis(first)


def test_counter_overflow_moves_to_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    fixed_ms = 2_100_000_000_000
    monkeypatch.setattr(_uuid, "time", SimpleNamespace(time_ns=lambda: fixed_ms * 1_000_000))
    first = uuid7()
    monkeypatch.setattr(_uuid, "_last_counter", (1 << 42) - 1)
    second = uuid7()
    assert _millis(first) == fixed_ms
    assert _millis(second) == fixed_ms + 1
    assert second > first
