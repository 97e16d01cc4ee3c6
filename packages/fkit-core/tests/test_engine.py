"""Engines built from settings, checked against a real PostgreSQL on both drivers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool, StaticPool

from fkit_core._engine import build_engine
from fkit_core.errors import ConfigurationError
from fkit_core.settings import BasePostgresConfig, QuerySettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

DEFAULT_TEST_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DRIVERS = ["asyncpg", "psycopg"]

QUERY = QuerySettings(
    statement_timeout=1.5,
    lock_timeout=0.25,
    idle_in_transaction_session_timeout=60,
    jit="off",
    application_name="fkit engine test",
    search_path=["fkit_app", 'odd "name" here', "public"],
)
# What SHOW reports for QUERY.
EXPECTED_SHOW = {
    "statement_timeout": "1500ms",
    "lock_timeout": "250ms",
    "idle_in_transaction_session_timeout": "1min",
    "jit": "off",
    "application_name": "fkit engine test",
    "search_path": '"fkit_app", "odd ""name"" here", "public"',
}

ConfigFactory = Callable[..., BasePostgresConfig]


@pytest.fixture
def server_url() -> str:
    """The test server; no fallback to skipping: a missing server fails the tests."""
    return os.environ.get("FKIT_TEST_DATABASE_URL") or DEFAULT_TEST_URL


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("FKIT_DB_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_config(server_url: str) -> ConfigFactory:
    def build(driver: str, **kwargs: Any) -> BasePostgresConfig:
        url = make_url(server_url).set(drivername=f"postgresql+{driver}")
        return BasePostgresConfig.from_url(url.render_as_string(hide_password=False), **kwargs)

    return build


@pytest_asyncio.fixture
async def engines() -> AsyncIterator[list[AsyncEngine]]:
    """Engines appended here are disposed after the test, whatever happens."""
    created: list[AsyncEngine] = []
    yield created
    for engine in created:
        await engine.dispose()


def start(config: BasePostgresConfig, engines: list[AsyncEngine]) -> AsyncEngine:
    engine = build_engine(config, config.primary_url(), config.engine_kwargs())
    engines.append(engine)
    return engine


async def show_all(conn: AsyncConnection) -> dict[str, str]:
    values = {}
    for name in EXPECTED_SHOW:
        values[name] = (await conn.exec_driver_sql(f"SHOW {name}")).scalar_one()
    return values


async def startup_values(conn: AsyncConnection) -> dict[str, str]:
    """Each setting's session value before any SET: what the startup packet carried."""
    rows = await conn.execute(
        text("SELECT name, reset_val FROM pg_settings WHERE name = ANY(:names)"),
        {"names": list(EXPECTED_SHOW)},
    )
    return {name: value for name, value in rows}


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_server_settings_reach_the_session(
    driver: str, make_config: ConfigFactory, engines: list[AsyncEngine]
) -> None:
    engine = start(make_config(driver, query=QUERY), engines)
    async with engine.connect() as conn:
        assert await show_all(conn) == EXPECTED_SHOW
        assert (await startup_values(conn))["statement_timeout"] == "1500"


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_top_level_jit_shortcut(
    driver: str, make_config: ConfigFactory, engines: list[AsyncEngine]
) -> None:
    engine = start(make_config(driver, jit="on", query={"jit": False}), engines)
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SHOW jit")).scalar_one() == "on"


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    ("pool", "pool_class"),
    [({"null_pool": True}, NullPool), ({"pool_class": "StaticPool"}, StaticPool)],
)
async def test_non_queue_pools_work(
    driver: str,
    pool: dict[str, Any],
    pool_class: type,
    make_config: ConfigFactory,
    engines: list[AsyncEngine],
) -> None:
    engine = start(make_config(driver, pool=pool), engines)
    assert type(engine.pool) is pool_class
    for _ in range(2):
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_pgbouncer_mode_sets_local_settings_per_transaction(
    driver: str, make_config: ConfigFactory, engines: list[AsyncEngine]
) -> None:
    baseline_engine = start(make_config(driver), engines)
    async with baseline_engine.connect() as conn:
        baseline = await startup_values(conn)
    assert baseline["statement_timeout"] != "1500"

    engine = start(make_config(driver, query=QUERY, pgbouncer=True, pool={"size": 1}), engines)
    async with engine.connect() as conn:
        # Inside a transaction every setting holds...
        assert await show_all(conn) == EXPECTED_SHOW
        # ...but the startup packet carried application_name only.
        assert await startup_values(conn) == {
            **baseline,
            "application_name": "fkit engine test",
        }
        await conn.commit()
        # A new transaction on the same connection gets the settings again.
        assert await show_all(conn) == EXPECTED_SHOW
        await conn.rollback()

    # Outside a transaction (autocommit) the session keeps its startup values.
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        value = (await autocommit.exec_driver_sql("SHOW statement_timeout")).scalar_one()
        default = (
            await autocommit.exec_driver_sql(
                "SELECT reset_val FROM pg_settings WHERE name = 'statement_timeout'"
            )
        ).scalar_one()
        assert value != "1500ms"
        assert default == baseline["statement_timeout"]


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_pgbouncer_mode_uses_one_bound_statement(
    driver: str, make_config: ConfigFactory, engines: list[AsyncEngine]
) -> None:
    engine = start(make_config(driver, query=QUERY, pgbouncer=True), engines)
    seen: list[tuple[str, Any]] = []

    def record(
        conn: object, cursor: object, statement: str, parameters: Any, *args: object
    ) -> None:
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    async with engine.begin() as conn:
        await conn.execute(text("SELECT 1"))
    assert len(seen) == 2
    statement, parameters = seen[0]
    assert statement.startswith("SELECT set_config(")
    assert statement.count("set_config(") == len(EXPECTED_SHOW) - 1
    for value in ("1500", "250", "60000", "fkit_app", "statement_timeout"):
        assert value not in statement
    assert "1500" in str(parameters)
    assert seen[1][0] == "SELECT 1"


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_pgbouncer_mode_statement_timeout_is_enforced(
    driver: str, make_config: ConfigFactory, engines: list[AsyncEngine]
) -> None:
    config = make_config(driver, query={"statement_timeout": 0.05}, pgbouncer=True)
    engine = start(config, engines)
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError) as info:
            await conn.execute(text("SELECT pg_sleep(30)"))
        assert getattr(info.value.orig, "sqlstate", None) == "57014"


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_replica_url_builds_an_engine(
    driver: str, make_config: ConfigFactory, engines: list[AsyncEngine], server_url: str
) -> None:
    # The same server plays the replica: the point is the URL and driver handling.
    config = make_config(driver, replica_urls=[server_url], query={"application_name": "rep"})
    engine = build_engine(config, config.replica_url(0), config.engine_kwargs())
    engines.append(engine)
    assert engine.url.drivername == f"postgresql+{driver}"
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("SHOW application_name")).scalar_one() == "rep"


def test_rejected_options_raise_configuration_error(make_config: ConfigFactory) -> None:
    config = make_config("asyncpg")
    options = config.engine_kwargs()
    options["not_an_option"] = True
    with pytest.raises(ConfigurationError, match="not_an_option"):
        build_engine(config, config.primary_url(), options)


@pytest.mark.asyncio
@pytest.mark.parametrize("driver", DRIVERS)
async def test_pgbouncer_mode_keeps_isolation_level_and_read_only(
    driver: str, make_config: ConfigFactory, engines: list[AsyncEngine]
) -> None:
    """The set_config statement opens the transaction with the requested characteristics."""
    engine = start(make_config(driver, query=QUERY, pgbouncer=True), engines)
    async with engine.connect() as conn:
        serializable = await conn.execution_options(
            isolation_level="SERIALIZABLE", postgresql_readonly=True
        )
        isolation = await serializable.exec_driver_sql("SHOW transaction_isolation")
        assert isolation.scalar_one() == "serializable"
        read_only = await serializable.exec_driver_sql("SHOW transaction_read_only")
        assert read_only.scalar_one() == "on"
        assert await show_all(serializable) == EXPECTED_SHOW
