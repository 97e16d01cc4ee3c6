"""The event bus: sync subscribers, scope hooks around transaction bodies, engine-option hooks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fkit_core.events import EngineRole, Event, TransactionKind

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["EngineOptionsHook", "EventBus", "ScopeHook", "TransactionScope", "Unsubscribe"]

logger = logging.getLogger("fkit_core.bus")

E = TypeVar("E", bound=Event)
Unsubscribe = Callable[[], None]
"""Calling it removes the subscription or hook it was returned for (idempotent)."""


@dataclass(frozen=True, slots=True)
class TransactionScope:
    """What a scope hook is told about the transaction it wraps.

    Attributes:
        manager: The session manager's name.
        engine_name: The engine the transaction runs on.
        kind: What opened it.
        isolation_level: The requested isolation level, or None.
        readonly: Whether it is read-only.
        nested: Whether it is a savepoint.
        session: The session the body uses.
    """

    manager: str
    engine_name: str
    kind: TransactionKind
    isolation_level: str | None
    readonly: bool
    nested: bool
    session: AsyncSession


ScopeHook = Callable[[TransactionScope], AbstractContextManager[object]]
"""Returns a context manager entered around a transaction body (a span made current, say).

The exception that ends the body, if any, is passed to its ``__exit__``; a hook can
never suppress it.
"""

EngineOptionsHook = Callable[[str, EngineRole, dict[str, Any]], None]
"""Called with (engine name, role, the ``create_async_engine`` keyword arguments) before
each engine is created; it may change the arguments in place."""


class EventBus:
    """Delivers events to sync subscribers in subscription order.

    Subscribing to a class receives its subclasses too; ``subscribe_all`` receives
    everything. A subscriber that raises is logged and counted in
    :attr:`subscriber_errors`; it never breaks the emitter's work. Emitting is cheap
    when nobody listens, and :meth:`wants` lets the emitter skip building the event.
    """

    __slots__ = ("_engine_hooks", "_handlers", "_resolved", "_scope_hooks", "subscriber_errors")

    def __init__(self) -> None:
        # (event type, handler) pairs in subscription order; Event means "everything".
        self._handlers: list[tuple[type[Event], Callable[[Any], None]]] = []
        # Per concrete event type, the handlers that receive it, resolved once.
        self._resolved: dict[type[Event], tuple[Callable[[Any], None], ...]] = {}
        self._scope_hooks: tuple[ScopeHook, ...] = ()
        self._engine_hooks: tuple[EngineOptionsHook, ...] = ()
        self.subscriber_errors = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> Unsubscribe:
        """Call ``handler(event)`` for every emitted event that is an ``event_type``.

        Args:
            event_type: An event class from :mod:`fkit_core.events` (subclasses match too).
            handler: A sync callable; it runs on the emitter's hot path, so keep it fast.

        Returns:
            A callable that removes this subscription.
        """
        entry: tuple[type[Event], Callable[[Any], None]] = (event_type, handler)
        self._handlers.append(entry)
        self._resolved.clear()

        def unsubscribe() -> None:
            if entry in self._handlers:
                self._handlers.remove(entry)
                self._resolved.clear()

        return unsubscribe

    def subscribe_all(self, handler: Callable[[Event], None]) -> Unsubscribe:
        """Call ``handler(event)`` for every event.

        Returns:
            A callable that removes this subscription.
        """
        return self.subscribe(Event, handler)

    def _handlers_for(self, event_type: type[Event]) -> tuple[Callable[[Any], None], ...]:
        handlers = self._resolved.get(event_type)
        if handlers is None:
            handlers = tuple(h for t, h in self._handlers if issubclass(event_type, t))
            self._resolved[event_type] = handlers
        return handlers

    def wants(self, event_type: type[Event]) -> bool:
        """Tell whether anybody would receive an event of this type.

        Emitters on hot paths check this before building an event.
        """
        return bool(self._handlers_for(event_type))

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to its subscribers; a failing subscriber is logged and skipped."""
        for handler in self._handlers_for(type(event)):
            try:
                handler(event)
            except Exception:
                self.subscriber_errors += 1
                logger.exception(
                    "fkit event subscriber %r failed on %s; the emitter goes on",
                    handler,
                    type(event).__name__,
                )

    def add_scope_hook(self, hook: ScopeHook) -> Unsubscribe:
        """Register a context-manager factory entered around every transaction body.

        Hooks are entered in registration order and exited in reverse.

        Returns:
            A callable that removes the hook.
        """
        self._scope_hooks = (*self._scope_hooks, hook)

        def remove() -> None:
            self._scope_hooks = tuple(h for h in self._scope_hooks if h is not hook)

        return remove

    @property
    def has_scope_hooks(self) -> bool:
        """Whether any scope hook is registered."""
        return bool(self._scope_hooks)

    @contextmanager
    def scope(self, info: TransactionScope) -> Iterator[None]:
        """Enter every scope hook around a transaction body.

        A hook that fails to enter or exit is logged and counted; the body still runs
        and its own exception is always the one that propagates.
        """
        entered: list[AbstractContextManager[object]] = []
        for hook in self._scope_hooks:
            try:
                cm = hook(info)
                cm.__enter__()
            except Exception:
                self.subscriber_errors += 1
                logger.exception(
                    "fkit scope hook %r failed to enter; the transaction goes on", hook
                )
            else:
                entered.append(cm)
        try:
            yield
        except BaseException as exc:
            self._exit_all(entered, exc)
            raise
        else:
            self._exit_all(entered, None)

    def _exit_all(
        self, entered: list[AbstractContextManager[object]], exc: BaseException | None
    ) -> None:
        for cm in reversed(entered):
            try:
                # The return value is ignored on purpose: a hook must not swallow the error.
                cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
            except Exception:
                self.subscriber_errors += 1
                logger.exception("fkit scope hook %r failed to exit; the transaction goes on", cm)

    def add_engine_options_hook(self, hook: EngineOptionsHook) -> Unsubscribe:
        """Register a hook that may change engine keyword arguments before each engine is made.

        Plugins call this from ``setup()``, which runs before the engines exist (a JSON
        serializer or connect arguments, for example).

        Returns:
            A callable that removes the hook.
        """
        self._engine_hooks = (*self._engine_hooks, hook)

        def remove() -> None:
            self._engine_hooks = tuple(h for h in self._engine_hooks if h is not hook)

        return remove

    def apply_engine_options(
        self, engine_name: str, role: EngineRole, options: dict[str, Any]
    ) -> None:
        """Run every engine-options hook on ``options`` in registration order.

        Unlike subscribers, a failing engine-options hook raises: an engine built
        without options a plugin needs would misbehave later, far from the cause.
        """
        for hook in self._engine_hooks:
            hook(engine_name, role, options)
