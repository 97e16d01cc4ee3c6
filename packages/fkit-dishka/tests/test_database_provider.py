"""AsyncDatabaseProvider: settings sources, the started manager, and the request-scoped session."""

# No `from __future__ import annotations`: dishka reads the local providers' annotations.
import asyncio
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import NewType

import pytest
from dishka import Provider, Scope, make_async_container, provide
from dishka.exceptions import ExitError, NoContextValueError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fkit_core import AsyncSessionManager, Plugin
from fkit_core.errors import ConfigurationError, ManagerClosedError, UniqueViolationError
from fkit_core.events import TransactionEnded
from fkit_core.settings import BasePostgresConfig
from fkit_dishka import AsyncDatabaseProvider, ScopedTransaction


class Recorder:
    """A plugin that records the transactions of the manager it is set up on."""

    name = "recorder"

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def setup(self, manager: AsyncSessionManager) -> None:
        manager.bus.subscribe(TransactionEnded, lambda e: self.outcomes.append(e.outcome))


@pytest.mark.asyncio
async def test_settings_from_the_context_give_a_started_manager_closed_with_the_container(
    config: BasePostgresConfig,
    connections: Callable[[], Awaitable[int]],
    connections_gone: Callable[[], Awaitable[bool]],
) -> None:
    container = make_async_container(
        AsyncDatabaseProvider(autoload=False), context={BasePostgresConfig: config}
    )
    assert await container.get(BasePostgresConfig) is config
    manager = await container.get(AsyncSessionManager)
    assert manager.state == "started"
    assert manager.config is config
    assert await container.get(AsyncSessionManager) is manager  # APP scope: one manager
    assert await container.get(AsyncEngine) is manager.engine
    assert await container.get(async_sessionmaker[AsyncSession]) is manager.session_maker
    async with container() as request:
        session = await request.get(AsyncSession)
        await session.execute(text("SELECT 1"))
    assert await connections() >= 1  # the pool keeps the connection open

    await container.close()

    assert manager.state == "closed"
    assert await connections_gone()
    with pytest.raises(ManagerClosedError):
        manager.get_transaction()


@pytest.mark.asyncio
async def test_a_config_or_url_given_to_the_provider_needs_no_context(db_url: str) -> None:
    for config in (db_url, BasePostgresConfig(url=db_url)):
        container = make_async_container(AsyncDatabaseProvider(config, autoload=False))
        manager = await container.get(AsyncSessionManager)
        assert manager.state == "started"
        assert (
            await container.get(BasePostgresConfig)
        ).primary_url() == manager.config.primary_url()
        await container.close()
        assert manager.state == "closed"


@pytest.mark.asyncio
async def test_settings_from_a_provider_of_yours(config: BasePostgresConfig) -> None:
    class Settings:
        postgres = config

    class SettingsProvider(Provider):
        scope = Scope.APP

        @provide
        def settings(self) -> Settings:
            return Settings()

        @provide
        def postgres(self, settings: Settings) -> BasePostgresConfig:
            return settings.postgres

    container = make_async_container(
        SettingsProvider(), AsyncDatabaseProvider(config_from_context=False, autoload=False)
    )
    manager = await container.get(AsyncSessionManager)
    assert manager.config is config
    await container.close()


@pytest.mark.asyncio
async def test_without_context_settings_resolution_fails_clearly() -> None:
    container = make_async_container(AsyncDatabaseProvider(autoload=False))
    with pytest.raises(NoContextValueError):
        await container.get(AsyncSessionManager)
    await container.close()


def test_a_config_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="BasePostgresConfig or a URL"):
        AsyncDatabaseProvider(config=42)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_plugins_given_and_plugins_provided_in_the_container_are_set_up(
    config: BasePostgresConfig,
) -> None:
    given = Recorder()
    provided = Recorder()
    provided.name = "provided-recorder"

    class PluginProvider(Provider):
        @provide(scope=Scope.APP)
        def plugin(self) -> Plugin:
            return provided

    container = make_async_container(
        PluginProvider(),
        AsyncDatabaseProvider(config, plugins=[given], autoload=False, name="orders"),
    )
    manager = await container.get(AsyncSessionManager)
    assert manager.name == "orders"
    assert set(manager.plugins) == {given, provided}
    async with container() as request:
        await (await request.get(AsyncSession)).execute(text("SELECT 1"))
    assert given.outcomes == provided.outcomes == ["commit"]
    await container.close()


@pytest.mark.asyncio
async def test_the_request_session_commits_when_the_scope_ends_normally(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    container = make_async_container(AsyncDatabaseProvider(config, autoload=False))
    async with container() as request:
        session = await request.get(AsyncSession)
        assert session.in_transaction()
        assert await request.get(AsyncSession) is session  # one per scope
        await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
        assert await committed() == []  # not yet: the scope is still open
    assert await committed() == [1]
    await container.close()


@pytest.mark.asyncio
async def test_the_request_session_rolls_back_when_the_scope_ends_with_an_exception(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    # dishka ends a scope with `agen.asend(exc)`: the exception is *sent* into the
    # generator, never raised there. A plain `async with ...: yield session` would commit.
    recorder = Recorder()
    container = make_async_container(
        AsyncDatabaseProvider(config, plugins=[recorder], autoload=False)
    )
    with pytest.raises(LookupError, match="handler failed") as caught:
        async with container() as request:
            session = await request.get(AsyncSession)
            await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
            raise LookupError("handler failed")
    assert type(caught.value) is LookupError  # the original, not a dishka ExitError
    assert await committed() == []
    assert recorder.outcomes == ["error"]
    await container.close()


@pytest.mark.asyncio
async def test_a_database_error_in_the_scope_rolls_back_and_reaches_the_caller_unchanged(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    # The error is already propagating when the scope ends; raising its translation from
    # the finalizer would make dishka replace it with an ExitError, so it stays as raised.
    container = make_async_container(AsyncDatabaseProvider(config, autoload=False))
    with pytest.raises(IntegrityError):
        async with container() as request:
            session = await request.get(AsyncSession)
            await session.execute(text(f"INSERT INTO {table} VALUES (1), (1)"))
    assert await committed() == []
    async with container() as request:  # the pool is healthy for the next request
        await (await request.get(AsyncSession)).execute(text(f"INSERT INTO {table} VALUES (2)"))
    assert await committed() == [2]
    await container.close()


@pytest.mark.asyncio
async def test_a_cancelled_scope_rolls_back(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    container = make_async_container(AsyncDatabaseProvider(config, autoload=False))
    inserted = asyncio.Event()

    async def request_that_hangs() -> None:
        async with container() as request:
            session = await request.get(AsyncSession)
            await session.execute(text(f"INSERT INTO {table} VALUES (1)"))
            inserted.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(request_that_hangs())
    await asyncio.wait_for(inserted.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await committed() == []
    await container.close()


@pytest.mark.asyncio
async def test_a_failing_commit_is_raised_when_the_scope_ends(
    config: BasePostgresConfig, admin: AsyncSessionManager
) -> None:
    name = f"dishka_deferred_{uuid.uuid4().hex[:8]}"
    async with admin.get_transaction() as s:
        await s.execute(
            text(f"CREATE TABLE {name} (v int, UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)")
        )
    container = make_async_container(AsyncDatabaseProvider(config, autoload=False))
    try:
        # COMMIT fails after the scope's body ended normally: dishka reports failures of
        # its finalizers as an ExitError group.
        with pytest.raises(ExitError) as caught:
            async with container() as request:
                session = await request.get(AsyncSession)
                await session.execute(text(f"INSERT INTO {name} VALUES (1), (1)"))
        assert [type(e) for e in caught.value.exceptions] == [UniqueViolationError]
    finally:
        await container.close()
        async with admin.get_transaction() as s:
            await s.execute(text(f"DROP TABLE {name}"))


@pytest.mark.asyncio
async def test_closing_the_container_drains_a_transaction_still_running(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    container = make_async_container(AsyncDatabaseProvider(config, autoload=False))
    manager = await container.get(AsyncSessionManager)
    started = asyncio.Event()
    release = asyncio.Event()

    async def job() -> None:
        async with manager.get_transaction() as s:
            await s.execute(text(f"INSERT INTO {table} VALUES (7)"))
            started.set()
            await release.wait()

    task = asyncio.create_task(job())
    await asyncio.wait_for(started.wait(), 30)
    closing = asyncio.create_task(container.close())
    await asyncio.sleep(0)
    assert manager.state == "closing"  # waits for the job instead of disposing under it
    release.set()
    await asyncio.wait_for(asyncio.gather(task, closing), 60)
    assert manager.state == "closed"
    assert await committed() == [7]


# A distinct key for a read-only REPEATABLE READ session per request.
ReportSession = NewType("ReportSession", AsyncSession)


class ReportProvider(Provider):
    @provide(scope=Scope.REQUEST)
    async def report_session(
        self, manager: AsyncSessionManager
    ) -> AsyncGenerator[ReportSession, BaseException | None]:
        scoped = ScopedTransaction(manager.get_transaction("repeatable read", readonly=True))
        session = ReportSession(await scoped.enter())
        try:
            error = yield session
        except BaseException as exc:
            await scoped.exit(exc)
            raise
        await scoped.exit(error)


@pytest.mark.asyncio
async def test_scoped_transaction_in_a_factory_of_yours(config: BasePostgresConfig) -> None:
    container = make_async_container(
        AsyncDatabaseProvider(config, autoload=False), ReportProvider()
    )
    async with container() as request:
        session = await request.get(ReportSession)
        settings = await session.execute(
            text(
                "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')"
            )
        )
        assert tuple(settings.one()) == ("repeatable read", "on")
    with pytest.raises(LookupError):
        async with container() as request:
            await (await request.get(ReportSession)).execute(text("SELECT 1"))
            raise LookupError("rolled back, not committed")
    await container.close()
