"""``AsyncDatabaseProvider``: settings, the started session manager, engine, sessions.

No ``from __future__ import annotations`` here: dishka reads the factories' annotations
at runtime to know what each one provides and needs.
"""

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from dishka import Provider, Scope, collect, provide
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fkit_core import AsyncSessionManager, Plugin
from fkit_core.errors import ConfigurationError
from fkit_core.settings import BasePostgresConfig
from fkit_dishka._scope import ScopedTransaction

__all__ = ["AsyncDatabaseProvider"]


class AsyncDatabaseProvider(Provider):
    """Provides fkit's database objects to a dishka container.

    APP scope: :class:`~fkit_core.settings.BasePostgresConfig`, the *started*
    :class:`~fkit_core.AsyncSessionManager` (closed, with its engines, when the container
    closes), its primary ``AsyncEngine`` and its ``async_sessionmaker[AsyncSession]``.
    REQUEST scope: an ``AsyncSession`` inside a transaction, committed when the scope
    ends normally and rolled back when it ends with an exception.

    Every :class:`~fkit_core.Plugin` provided in the container (for example by
    :class:`PrometheusPostgresMetricsProvider`) is set up on the manager, in addition to
    ``plugins``; none is required.

    Args:
        config: The settings, or a database URL. When None, the settings come from the
            container context (``make_async_container(..., context={BasePostgresConfig:
            config})``) or, with ``config_from_context=False``, from a provider of yours.
        config_from_context: Where the settings come from when ``config`` is None: the
            context (True) or another provider that provides ``BasePostgresConfig``.
        plugins: Plugins set up on the manager besides those provided in the container.
        autoload: Whether the manager loads installed plugins; None follows
            ``FKIT_DISABLE_PLUGIN_AUTOLOAD`` (on by default).
        name: The manager's name in events, logs and metric labels.
        close_timeout: Seconds ``close()`` waits for in-flight work when the container
            closes, before cancelling it.
        session_options: Extra ``async_sessionmaker`` arguments.
        component: The dishka component to provide in (the default one when None).

    Raises:
        ConfigurationError: ``config`` is neither settings nor a URL string.
    """

    scope = Scope.APP

    fkit_plugins = collect(Plugin)

    def __init__(
        self,
        config: BasePostgresConfig | str | None = None,
        *,
        config_from_context: bool = True,
        plugins: Sequence[Plugin] = (),
        autoload: bool | None = None,
        name: str = "default",
        close_timeout: float = 30.0,
        session_options: dict[str, Any] | None = None,
        component: str | None = None,
    ) -> None:
        super().__init__(component=component)
        self._plugins = tuple(plugins)
        self._autoload = autoload
        self._manager_name = name
        self._close_timeout = close_timeout
        self._session_options = dict(session_options or {})
        if config is not None:
            if isinstance(config, str):
                config = BasePostgresConfig(url=config)
            elif not isinstance(config, BasePostgresConfig):
                raise ConfigurationError(
                    f"AsyncDatabaseProvider(config=...) takes a BasePostgresConfig or a URL "
                    f"string, not {type(config).__name__}"
                )
            fixed = config

            def settings() -> BasePostgresConfig:
                return fixed

            self.provide(settings, provides=BasePostgresConfig)
        elif config_from_context:
            self.from_context(provides=BasePostgresConfig, scope=Scope.APP)

    def __repr__(self) -> str:
        return f"<AsyncDatabaseProvider manager={self._manager_name!r}>"

    @provide
    async def session_manager(
        self, config: BasePostgresConfig, fkit_plugins: list[Plugin]
    ) -> AsyncIterator[AsyncSessionManager]:
        """The started session manager; closed (drained, engines disposed) with the container."""
        manager = AsyncSessionManager(
            config,
            plugins=[*self._plugins, *fkit_plugins],
            autoload=self._autoload,
            name=self._manager_name,
            session_options=self._session_options,
        )
        await manager.start()
        try:
            yield manager
        finally:
            await manager.close(self._close_timeout)

    @provide
    def engine(self, manager: AsyncSessionManager) -> AsyncEngine:
        """The manager's primary engine."""
        return manager.engine

    @provide
    def session_maker(self, manager: AsyncSessionManager) -> async_sessionmaker[AsyncSession]:
        """The manager's primary sessionmaker; its sessions report on the manager's bus."""
        return manager.session_maker

    @provide(scope=Scope.REQUEST)
    async def session(
        self, manager: AsyncSessionManager
    ) -> AsyncGenerator[AsyncSession, BaseException | None]:
        """A session in a transaction for the scope: committed at its end, rolled back on error."""
        scoped = ScopedTransaction(manager.get_transaction())
        session = await scoped.enter()
        try:
            error = yield session
        except BaseException as exc:
            await scoped.exit(exc)
            raise
        await scoped.exit(error)
