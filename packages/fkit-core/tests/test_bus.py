"""The event bus: delivery, order, failure isolation, scope hooks, engine-option hooks."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from fkit_core import EventBus, TransactionScope
from fkit_core.events import Event, HealthChecked, ManagerClosed, ManagerStarted

if TYPE_CHECKING:
    from collections.abc import Iterator


def test_subscribers_receive_their_type_and_subclasses_in_subscription_order() -> None:
    bus = EventBus()
    calls: list[str] = []
    bus.subscribe(ManagerStarted, lambda e: calls.append(f"started:{e.plugins}"))
    bus.subscribe_all(lambda e: calls.append(f"all:{type(e).__name__}"))
    bus.subscribe(Event, lambda e: calls.append("base"))
    bus.emit(ManagerStarted("m", ("a",)))
    bus.emit(ManagerClosed("m", 0))
    assert calls == [
        "started:('a',)",
        "all:ManagerStarted",
        "base",
        "all:ManagerClosed",
        "base",
    ]


def test_wants_reflects_subscriptions_and_unsubscribe() -> None:
    bus = EventBus()
    assert not bus.wants(HealthChecked)
    unsubscribe = bus.subscribe(HealthChecked, lambda e: None)
    assert bus.wants(HealthChecked)
    assert not bus.wants(ManagerStarted)
    unsubscribe()
    unsubscribe()  # idempotent
    assert not bus.wants(HealthChecked)


def test_failing_subscriber_is_logged_counted_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    after: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe_all(broken)
    bus.subscribe_all(after.append)
    with caplog.at_level(logging.ERROR, logger="fkit_core.bus"):
        bus.emit(ManagerClosed("m", 0))
    assert after == [ManagerClosed("m", 0)]
    assert bus.subscriber_errors == 1
    assert "subscriber bug" in caplog.text
    assert "ManagerClosed" in caplog.text


def _scope(session: Any = None) -> TransactionScope:
    return TransactionScope("m", "primary", "transaction", None, False, False, session)


def test_scope_hooks_wrap_the_body_in_order_and_see_its_exception() -> None:
    bus = EventBus()
    log: list[str] = []

    def hook(tag: str) -> Any:
        @contextmanager
        def cm(info: TransactionScope) -> Iterator[None]:
            log.append(f"enter {tag} {info.kind}")
            try:
                yield
            except BaseException as exc:
                log.append(f"exit {tag} {type(exc).__name__}")
                raise
            log.append(f"exit {tag} ok")

        return cm

    bus.add_scope_hook(hook("a"))
    bus.add_scope_hook(hook("b"))
    with bus.scope(_scope()):
        log.append("body")
    with pytest.raises(KeyError), bus.scope(_scope()):
        raise KeyError("x")
    assert log == [
        "enter a transaction",
        "enter b transaction",
        "body",
        "exit b ok",
        "exit a ok",
        "enter a transaction",
        "enter b transaction",
        "exit b KeyError",
        "exit a KeyError",
    ]


def test_a_scope_hook_cannot_swallow_the_body_error_nor_break_it() -> None:
    bus = EventBus()

    class Swallower:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *exc: object) -> bool:
            return True  # tries to suppress

    def broken_hook(info: TransactionScope) -> Any:
        raise RuntimeError("hook bug")

    bus.add_scope_hook(lambda info: Swallower())
    bus.add_scope_hook(broken_hook)
    ran = []
    with pytest.raises(ValueError, match="body error"), bus.scope(_scope()):
        ran.append(True)
        raise ValueError("body error")
    assert ran == [True]
    assert bus.subscriber_errors == 1


def test_engine_option_hooks_run_in_order_and_can_be_removed() -> None:
    bus = EventBus()
    remove = bus.add_engine_options_hook(
        lambda name, role, opts: opts.setdefault("order", []).append(1)
    )
    bus.add_engine_options_hook(lambda name, role, opts: opts["order"].append(f"{name}/{role}"))
    options: dict[str, Any] = {}
    bus.apply_engine_options("primary", "primary", options)
    assert options == {"order": [1, "primary/primary"]}
    remove()
    options = {"order": []}
    bus.apply_engine_options("replica-1", "replica", options)
    assert options == {"order": ["replica-1/replica"]}
