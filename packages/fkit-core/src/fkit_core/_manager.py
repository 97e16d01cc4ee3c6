"""The session manager: engines, sessionmakers, plugins, health, and a draining close."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fkit_core._bus import EventBus
from fkit_core._health import HealthReport, check_engine
from fkit_core._isolation import IsolationLevelLike, parse_isolation_level
from fkit_core._owner import ENGINE_INFO_KEY, MANAGER_INFO_KEY
from fkit_core._plugins import Plugin, resolve_plugins
from fkit_core._replicas import ReplicaRouter
from fkit_core._transaction import ManagedTransaction, TransactionSpec
from fkit_core._txevents import raise_translated
from fkit_core._work import TrackedSession, WorkTracker
from fkit_core.errors import ManagerClosedError, ManagerNotStartedError, PluginError
from fkit_core.events import (
    EngineCreated,
    EngineRole,
    HealthChecked,
    ManagerClosed,
    ManagerClosing,
    ManagerStarted,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import URL

    from fkit_core.settings import BasePostgresConfig

__all__ = ["AsyncSessionManager", "SessionManager", "create_async_session_manager"]

logger = logging.getLogger("fkit_core.manager")

State = Literal["new", "started", "closing", "closed"]


class AsyncSessionManager:
    """Owns the primary engine, replica engines, their sessionmakers and an event bus.

    Life cycle: ``await start()`` (alias ``initialize()``, or ``async with manager``)
    sets up the plugins, creates the engines and, when ``config.check_on_start`` is on,
    runs ``SELECT 1``; ``await close(timeout)`` (alias ``dispose()``) refuses new work,
    drains in-flight transactions, cancels what is left at the timeout and disposes the
    engines. A manager used before ``start()`` starts itself on first use (without the
    start-up check), so the reference kit's ``create_async_session_manager(...)`` then
    ``get_transaction()`` keeps working.

    Args:
        config: Settings, or a database URL string.
        plugins: Plugins to set up; an explicit plugin replaces the installed one of the
            same name.
        autoload: Whether to load installed plugins; None follows
            ``FKIT_DISABLE_PLUGIN_AUTOLOAD`` (on by default).
        name: The manager's name in events, logs and metric labels.
        session_options: Extra keyword arguments for the ``async_sessionmaker``.
    """

    def __init__(
        self,
        config: BasePostgresConfig | str,
        *,
        plugins: Sequence[Plugin] | None = None,
        autoload: bool | None = None,
        name: str = "default",
        session_options: dict[str, Any] | None = None,
    ) -> None:
        # Settings pull in pydantic-settings; importing them here, not at module level,
        # keeps `import fkit_core` nearly as cheap as importing SQLAlchemy alone.
        from fkit_core.settings import BasePostgresConfig

        self.config = (
            config if isinstance(config, BasePostgresConfig) else BasePostgresConfig(url=config)
        )
        self.name = name
        self.bus = EventBus()
        self._explicit_plugins = tuple(plugins or ())
        self._autoload = autoload
        self._session_options = dict(session_options or {})
        self._plugins: tuple[Plugin, ...] = ()
        self._state: State = "new"
        self._engines: dict[str, AsyncEngine] = {}
        self._makers: dict[str, async_sessionmaker[AsyncSession]] = {}
        self._work = WorkTracker()
        self._closed_event: asyncio.Event | None = None
        self._router: ReplicaRouter

    def __repr__(self) -> str:
        return f"<AsyncSessionManager {self.name!r} {self._state} url={self.config.masked_url()!r}>"

    # -- life cycle -------------------------------------------------------------------

    @property
    def state(self) -> State:
        """``"new"``, ``"started"``, ``"closing"`` or ``"closed"``."""
        return self._state

    @property
    def plugins(self) -> tuple[Plugin, ...]:
        """The plugins that were set up, sorted by name."""
        return self._plugins

    def _start_sync(self, *, announce: bool = True) -> None:
        if self._state == "started":
            return
        self._check_open()
        if announce and self.config.migrations.run_on_start:
            # Starting on first use cannot await a migration run; silently skipping the
            # migrations would run the service against an old schema.
            raise ManagerNotStartedError(
                "migrations.run_on_start is set, so this manager must be started with "
                "`await manager.start()` (or `async with manager`) before it is used"
            )
        try:
            plugins = resolve_plugins(self._explicit_plugins, self._autoload)
            for plugin in plugins:
                try:
                    plugin.setup(self)
                except Exception as exc:
                    raise PluginError(
                        f"fkit plugin {plugin.name!r} failed to set up: {exc}"
                    ) from exc
            self._plugins = tuple(plugins)
            self._create_engine("primary", "primary", self.config.primary_url())
            for index, url in enumerate(self.config.replica_sqlalchemy_urls(), start=1):
                self._create_engine(f"replica-{index}", "replica", url)
            self._router = ReplicaRouter(self, self._makers)
        except BaseException:
            self._discard_engines_sync()
            raise
        self._state = "started"
        if announce:
            self._announce_started()

    def _announce_started(self) -> None:
        if self.bus.wants(ManagerStarted):
            self.bus.emit(ManagerStarted(self.name, tuple(p.name for p in self._plugins)))

    def _create_engine(self, engine_name: str, role: EngineRole, url: URL) -> None:
        from fkit_core._engine import build_engine

        options = self.config.engine_kwargs()
        self.bus.apply_engine_options(engine_name, role, options)
        engine = build_engine(self.config, url, options)
        self._engines[engine_name] = engine
        # Once the manager is closed nothing may reopen the pool, not even code that kept
        # a reference to the engine: refuse every new DBAPI connection.
        event.listen(engine.sync_engine, "do_connect", self._refuse_when_closed)
        # Work still running when close() disposed the pool (the closing task's own
        # transaction) returns its connection later: close it then, never keep it.
        event.listen(engine.sync_engine.pool, "checkin", self._close_when_closed)
        self._makers[engine_name] = async_sessionmaker(
            engine,
            expire_on_commit=False,
            # Every session knows its manager, so a UoW or helper built from a bare
            # sessionmaker still reports on this manager's bus.
            info={MANAGER_INFO_KEY: self, ENGINE_INFO_KEY: engine_name},
            **self._session_options,
        )
        if self.bus.wants(EngineCreated):
            self.bus.emit(EngineCreated(self.name, engine_name, role, engine))

    def _refuse_when_closed(self, *_: Any) -> None:
        if self._state == "closed":
            raise ManagerClosedError(
                f"session manager {self.name!r} is closed; its engines accept no new connections. "
                "Create and start a new manager."
            )

    def _close_when_closed(self, dbapi_connection: Any, record: Any) -> None:
        if self._state == "closed" and dbapi_connection is not None:
            record.invalidate()

    def _discard_engines_sync(self) -> None:
        # Engines made by a failed start have not connected yet (the start-up check runs
        # later and cleans up itself), so dropping the references is enough.
        self._engines.clear()
        self._makers.clear()

    async def start(self) -> None:
        """Set up plugins, create the engines, check the connection, emit ``ManagerStarted``.

        Idempotent. A failing start disposes whatever it created and re-raises.

        Raises:
            ManagerClosedError: The manager was closed; managers are not restartable.
            PluginError: A plugin failed to load or set up.
            DatabaseError: The start-up check could not reach the database.
        """
        if self._state == "started":
            return
        self._start_sync(announce=False)
        if self.config.check_on_start:
            try:
                async with self._engines["primary"].connect() as conn:
                    await conn.execute(text("SELECT 1"))
            except BaseException as exc:
                await self._dispose_engines()
                self._state = "new"
                raise_translated(self, exc, "primary")
                raise
        migrations = self.config.migrations
        if migrations.run_on_start and migrations.alembic_ini is not None:
            from fkit_core._migrations import run_migrations

            try:
                await run_migrations(self, migrations.alembic_ini, migrations.revision)
            except BaseException:
                await self._dispose_engines()
                self._state = "new"
                raise
        self._announce_started()

    initialize = start

    async def __aenter__(self) -> AsyncSessionManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, timeout: float = 30.0) -> None:
        """Refuse new work, drain in-flight work, then dispose the engines.

        Work still running after ``timeout`` seconds is cancelled; its transactions roll
        back. Idempotent; concurrent calls wait for the first one.

        Args:
            timeout: Seconds to wait for in-flight transactions and sessions.
        """
        if self._state == "closed":
            return
        if self._state == "new":
            self._state = "closed"
            return
        if self._state == "closing":
            assert self._closed_event is not None
            await self._closed_event.wait()
            return
        self._state = "closing"
        self._closed_event = asyncio.Event()
        if self.bus.wants(ManagerClosing):
            self.bus.emit(ManagerClosing(self.name, len(self._work), timeout))
        cancelled = 0
        try:
            cancelled = await self._work.drain(timeout)
        finally:
            await self._dispose_engines()
            self._state = "closed"
            for plugin in reversed(self._plugins):
                teardown = getattr(plugin, "teardown", None)
                if teardown is not None:
                    try:
                        teardown(self)
                    except Exception:
                        logger.exception("fkit plugin %r failed to tear down", plugin.name)
            self._closed_event.set()
        if self.bus.wants(ManagerClosed):
            self.bus.emit(ManagerClosed(self.name, cancelled))

    dispose = close

    async def _dispose_engines(self) -> None:
        engines = list(self._engines.values())
        for engine in engines:
            try:
                await engine.dispose()
            except Exception:
                logger.exception("disposing an engine failed")

    # -- work accounting --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state in ("closing", "closed"):
            raise ManagerClosedError(
                f"session manager {self.name!r} is {self._state} and refuses new sessions; "
                "create and start a new manager"
            )

    def enter_work(self) -> object:
        """Count work as in flight, so that :meth:`close` drains it (for plugin authors).

        fkit's own transactions and sessions do this themselves; a plugin that holds a
        connection outside them (a session-level lock, say) calls it and hands the
        token back to :meth:`leave_work` when done. ``close()`` waits for such work and,
        past its timeout, cancels the task that entered it.

        Returns:
            A token for :meth:`leave_work`.

        Raises:
            ManagerClosedError: The manager is closing or closed.
        """
        self._check_open()
        return self._work.enter()

    def leave_work(self, token: object | None) -> None:
        """End work counted by :meth:`enter_work`; a token given twice counts once."""
        self._work.leave(token)

    @property
    def in_flight(self) -> int:
        """Transactions and sessions currently running."""
        return len(self._work)

    # -- engines and sessions ---------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The primary engine (starts the manager on first use)."""
        self._start_sync()
        return self._engines["primary"]

    @property
    def session_maker(self) -> async_sessionmaker[AsyncSession]:
        """The primary sessionmaker (``expire_on_commit=False``); its sessions know this manager."""
        self._start_sync()
        return self._makers["primary"]

    @property
    def engines(self) -> dict[str, AsyncEngine]:
        """Every engine by name: ``"primary"`` and ``"replica-1"``, ``"replica-2"``, ..."""
        self._start_sync()
        return dict(self._engines)

    def configure_sessions(self, **options: Any) -> None:
        """Change the options of every sessionmaker this manager made, primary and replicas.

        SQLAlchemy's ``sessionmaker.configure``: sessions made afterwards, by the manager,
        a Unit of Work or a request dependency, use the new options. fkit-testing binds
        them to one connection whose transaction is rolled back after each test:
        ``configure_sessions(bind=connection, join_transaction_mode="create_savepoint")``.
        Transactions in such sessions are savepoints of that connection's transaction;
        they keep its isolation level, and ``readonly=True`` holds for the savepoint.

        Args:
            **options: ``async_sessionmaker`` arguments (``bind``, ``join_transaction_mode``,
                ``expire_on_commit``, ...). ``info`` is the manager's own; keep it.

        Raises:
            ManagerClosedError: The manager is closing or closed.
        """
        self._start_sync()
        self._check_open()
        for maker in self._makers.values():
            maker.configure(**options)

    def get_session(self, role: Literal["primary", "replica"] = "primary") -> TrackedSession:
        """A plain session, closed when the block ends; no transaction is managed.

        Use as ``async with manager.get_session() as session:``.

        Args:
            role: ``"replica"`` reads from a replica (round robin over those not known to
                be down; the primary when there is none). Writes belong on the primary.

        Raises:
            ManagerClosedError: The manager is closing or closed.
        """
        self._start_sync()
        return TrackedSession(self, self.session_maker_for(role)())

    def session_maker_for(
        self, role: Literal["primary", "replica"] = "primary"
    ) -> async_sessionmaker[AsyncSession]:
        """The sessionmaker for the primary, or for the next replica in the rotation."""
        self._start_sync()
        if role == "replica":
            return self._router.next_maker()
        return self._makers["primary"]

    def get_transaction(
        self,
        isolation_level: IsolationLevelLike | None = None,
        *,
        readonly: bool = False,
        deferrable: bool | None = None,
        statement_timeout: float | None = None,
        lock_timeout: float | None = None,
    ) -> ManagedTransaction[AsyncSession]:
        """A session inside a transaction: committed on success, rolled back on error or cancel.

        Use as ``async with manager.get_transaction() as session:``. Database errors are
        raised as :mod:`fkit_core.errors` classes with the driver's error chained.

        Args:
            isolation_level: An :class:`IsolationLevel` or its name in any case.
            readonly: Start the transaction READ ONLY.
            deferrable: Start it DEFERRABLE (meaningful with SERIALIZABLE READ ONLY).
            statement_timeout: Seconds, for this transaction only (``SET LOCAL``).
            lock_timeout: Seconds, for this transaction only (``SET LOCAL``).

        Raises:
            ConfigurationError: Unknown isolation level or a negative timeout.
            ManagerClosedError: The manager is closing or closed.
        """
        if (
            isolation_level is None
            and not readonly
            and deferrable is None
            and statement_timeout is None
            and lock_timeout is None
        ):
            # The everyday call: no parsing, no validation, one shared spec.
            self._start_sync()
            return ManagedTransaction(self, self._makers["primary"](), _DEFAULT_SPEC)
        spec = TransactionSpec(
            "transaction",
            parse_isolation_level(isolation_level),
            readonly,
            deferrable,
            statement_timeout,
            lock_timeout,
        )
        spec.local_settings()  # validates the timeouts before any work starts
        self._start_sync()
        return ManagedTransaction(self, self._makers["primary"](), spec)

    # -- health -----------------------------------------------------------------------

    async def health_report(
        self, query: str = "SELECT 1", timeout: float = 5.0, *, engine_name: str = "primary"
    ) -> HealthReport:
        """Run a health query and report latency and the error, within ``timeout`` seconds.

        Args:
            query: The query to run.
            timeout: Seconds after which the check counts as failed and returns.
            engine_name: Which engine to check.
        """
        self._start_sync()
        self._check_open()
        report = await check_engine(self._engines[engine_name], engine_name, query, timeout)
        self._router.observe(engine_name, report.healthy)
        if report.error:
            error = report.error
            # Drivers may echo connection details; no configured password may get through.
            for url in (self.config.primary_url(), *self.config.replica_sqlalchemy_urls()):
                if url.password:
                    error = error.replace(str(url.password), "***")
            report = HealthReport(report.engine_name, False, report.latency, error)
        if self.bus.wants(HealthChecked):
            error_class = report.error.split(":", 1)[0] if report.error else None
            self.bus.emit(
                HealthChecked(self.name, engine_name, report.healthy, report.latency, error_class)
            )
        return report

    async def healthcheck(self, query: str = "SELECT 1", timeout: float = 5.0) -> bool:
        """Tell whether the primary answers ``query`` within ``timeout`` seconds."""
        return (await self.health_report(query, timeout)).healthy


_DEFAULT_SPEC = TransactionSpec("transaction")

SessionManager = AsyncSessionManager
"""Short alias of :class:`AsyncSessionManager`."""


def create_async_session_manager(
    config: BasePostgresConfig | str,
    *,
    metrics: Plugin | None = None,
    plugins: Sequence[Plugin] | None = None,
    autoload: bool | None = None,
    name: str = "default",
    session_options: dict[str, Any] | None = None,
) -> AsyncSessionManager:
    """Build a session manager (not started yet), as the reference kit's factory does.

    Args:
        config: Settings, or a database URL string.
        metrics: A configured metrics plugin (``fkit_metrics.PostgresMetrics``), added to
            ``plugins``.
        plugins: Plugins to set up; see :class:`AsyncSessionManager`.
        autoload: Whether to load installed plugins too.
        name: The manager's name.
        session_options: Extra ``async_sessionmaker`` arguments.
    """
    chosen = [*(plugins or ()), *([metrics] if metrics is not None else [])]
    return AsyncSessionManager(
        config, plugins=chosen, autoload=autoload, name=name, session_options=session_options
    )
