"""The session manager as an async ``Resource`` that hands out the started manager.

dependency-injector turns every provider that depends on an async ``Resource`` into one
that returns an awaitable, even after the resource is initialized, and its wiring awaits
what such a resource returns. The reference kit's users write ``use_case =
container.create_user_use_case()`` after ``await container.init_resources()``.
:class:`ManagerResource` keeps that working: its async mode is off, so once the manager
has started it is returned as is, to direct callers, to the providers built on it and
to ``Provide[...]`` wiring alike; before that, calling it starts the manager and returns
the awaitable of the start.

``container.shutdown_resources()`` awaits the resources' shutdowns only when one of them
is in async mode; :class:`AsyncShutdownMarker`, a resource that holds nothing and is
always in async mode, keeps that true for every container that holds a manager.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from dependency_injector import providers

from fkit_core import AsyncSessionManager, Plugin, create_async_session_manager
from fkit_core.errors import ConfigurationError
from fkit_core.settings import BasePostgresConfig

__all__ = ["AsyncShutdownMarker", "ManagerResource", "as_config", "run_session_manager"]


class ManagerResource(providers.Resource[AsyncSessionManager]):
    """An async ``Resource`` whose value, once initialized, is returned as is, not awaited.

    ``init_resources()`` starts it (and awaits the start), ``shutdown_resources()`` closes
    it; in between, calling it returns the object itself.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.disable_async_mode()


async def _nothing() -> AsyncIterator[None]:
    yield None


class AsyncShutdownMarker(providers.Resource[None]):
    """A resource that holds nothing and keeps ``shutdown_resources()`` awaitable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(_nothing)
        self.enable_async_mode()


def as_config(value: object) -> BasePostgresConfig:
    """Settings from what ``postgres_config`` was given.

    Accepts ``BasePostgresConfig``, a URL string, or a mapping of its fields (what a
    ``providers.Configuration`` section gives).

    Raises:
        ConfigurationError: Anything else.
    """
    if isinstance(value, BasePostgresConfig):
        return value
    if isinstance(value, str):
        return BasePostgresConfig(url=value)
    if isinstance(value, Mapping):
        return BasePostgresConfig(**dict(value))
    raise ConfigurationError(
        "DatabaseContainer.postgres_config must provide a BasePostgresConfig, a URL string "
        f"or a mapping of its fields, not {type(value).__name__}"
    )


async def run_session_manager(
    postgres_config: object,
    *,
    metrics: Plugin | None = None,
    plugins: Sequence[Plugin] = (),
    autoload: bool | None = None,
    name: str = "default",
    close_timeout: float = 30.0,
    session_options: dict[str, Any] | None = None,
) -> AsyncIterator[AsyncSessionManager]:
    """Build and start a session manager; close it (drain, dispose) at shutdown."""
    manager = create_async_session_manager(
        as_config(postgres_config),
        metrics=metrics,
        plugins=plugins,
        autoload=autoload,
        name=name,
        session_options=session_options,
    )
    await manager.start()
    try:
        yield manager
    finally:
        await manager.close(close_timeout)
