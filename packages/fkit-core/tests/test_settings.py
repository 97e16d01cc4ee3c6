"""Settings: validation, secrets, URLs, the environment, and engine arguments per driver."""

from __future__ import annotations

import os
import traceback
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool, StaticPool

from fkit_core import settings
from fkit_core._engine import transaction_settings_for
from fkit_core.errors import ConfigurationError
from fkit_core.settings import (
    BasePostgresConfig,
    ConnectionSettings,
    PoolSettings,
    QuerySettings,
)
from fkit_core.settings._server import server_settings_for

PASSWORD = "s3cr3t p@ss/w%rd:x"
ENCODED_PASSWORD = "s3cr3t%20p%40ss%2Fw%25rd%3Ax"
URL_WITH_PASSWORD = f"postgresql://app:{ENCODED_PASSWORD}@db.internal:6432/appdb"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the FKIT_DB_* variables they set themselves."""
    for name in list(os.environ):
        if name.upper().startswith("FKIT_DB_"):
            monkeypatch.delenv(name)


def config_error(build: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        build(**kwargs)
    error = info.value
    # The ValidationError holding the inputs must not ride along as cause or context.
    assert error.__cause__ is None
    assert error.__context__ is None
    return str(error)


def test_public_names_are_pinned() -> None:
    assert settings.__all__ == [
        "ASYNC_POOL_CLASSES",
        "BasePostgresConfig",
        "ConnectionSettings",
        "Driver",
        "MigrationSettings",
        "PoolSettings",
        "QuerySettings",
    ]


def test_defaults() -> None:
    config = BasePostgresConfig()
    assert config.connection == ConnectionSettings()
    assert config.connection.driver == "asyncpg"
    assert config.url is None
    assert config.pgbouncer is False
    assert config.check_on_start is True
    assert config.replica_urls == []
    assert str(config.primary_url()) == "postgresql+asyncpg://postgres@localhost:5432/postgres"


# --- validation errors: each names the field by its dotted path -----------------------


@pytest.mark.parametrize(
    ("kwargs", "path", "hint"),
    [
        ({"size": 0}, "size", "greater than or equal to 1"),
        ({"max_overflow": -1}, "max_overflow", "greater than or equal to 0"),
        ({"timeout": 0}, "timeout", "greater than 0"),
        ({"recycle": 0}, "recycle", "greater than 0"),
        ({"size": "many"}, "size", "valid integer"),
        ({"pool_class": "QueuePool"}, "pool_class", "async-adapted pool"),
        ({"pool_class": "SingletonThreadPool"}, "pool_class", "async-adapted pool"),
        ({"pool_class": "FancyPool"}, "pool_class", "AsyncAdaptedQueuePool"),
        ({"null_pool": True, "pool_class": "StaticPool"}, "null_pool and pool_class", "alone"),
        ({"bogus": 1}, "bogus", "Extra inputs"),
    ],
)
def test_pool_settings_errors(kwargs: dict[str, Any], path: str, hint: str) -> None:
    message = config_error(PoolSettings, **kwargs)
    assert f"  {path}" in message
    assert hint in message
    assert message.startswith("invalid PoolSettings (1 error)")


@pytest.mark.parametrize(
    ("kwargs", "path", "hint"),
    [
        ({"port": 0}, "port", "greater than or equal to 1"),
        ({"port": 65536}, "port", "less than or equal to 65535"),
        ({"driver": "psycopg2"}, "driver", "'asyncpg' or 'psycopg'"),
        ({"host": ""}, "host", "at least 1 character"),
        ({"query": {"password": "x"}}, "query", "must not carry a password"),
    ],
)
def test_connection_settings_errors(kwargs: dict[str, Any], path: str, hint: str) -> None:
    message = config_error(ConnectionSettings, **kwargs)
    assert f"  {path}: " in message
    assert hint in message


@pytest.mark.parametrize(
    ("kwargs", "path", "hint"),
    [
        ({"statement_timeout": -1}, "statement_timeout", "greater than or equal to 0"),
        ({"lock_timeout": 0.0004}, "lock_timeout", "at least 0.001 seconds"),
        ({"idle_in_transaction_session_timeout": 3e6}, "idle_in_transaction", "less than"),
        ({"statement_cache_size": -1}, "statement_cache_size", "greater than or equal"),
        ({"prepared_statement_cache_size": -5}, "prepared_statement_cache_size", "greater"),
        ({"jit": "maybe"}, "jit", "valid boolean"),
        ({"application_name": "caf\u00e9"}, "application_name", "printable ASCII"),
        ({"application_name": "a" * 64}, "application_name", "at most 63"),
        ({"search_path": "app,,public"}, "search_path", "entry 1 is empty"),
        ({"search_path": []}, "search_path", "at least one schema"),
        ({"search_path": ["app\n"]}, "search_path", "control characters"),
        ({"search_path": ["s" * 64]}, "search_path", "longer than 63 bytes"),
    ],
)
def test_query_settings_errors(kwargs: dict[str, Any], path: str, hint: str) -> None:
    message = config_error(QuerySettings, **kwargs)
    assert f"  {path}" in message
    assert hint in message


@pytest.mark.parametrize(
    ("kwargs", "path", "hint"),
    [
        ({"pool": {"size": 0}}, "pool.size", "greater than or equal to 1"),
        ({"connection": {"port": "x"}}, "connection.port", "valid integer"),
        ({"query": {"search_path": ""}}, "query.search_path", "entry 0 is empty"),
        ({"pool": {"pool_class": "QueuePool"}}, "pool.pool_class", "async-adapted"),
        ({"jit": "sometimes"}, "jit", "valid boolean"),
        ({"url": "mysql://u:p@h/db"}, "url", "postgresql+psycopg://"),
        ({"url": "postgresql+pg8000://h/db"}, "url", "postgresql+asyncpg://"),
        ({"url": "postgresql+psycopg2://h/db"}, "url", "postgresql://, postgres://"),
        ({"url": "not a url at all"}, "url", "could not be parsed"),
        ({"url": "postgresql://h:port/db"}, "url", "could not be parsed"),
        ({"url": "postgresql://u:pa@ss@h/db"}, "url", "percent-encoded"),
        ({"url": "postgresql://h:0/db"}, "url", "the URL's port"),
        ({"url": "postgresql://h/db?a=1&a=2"}, "url", "more than once"),
        ({"replica_urls": ["postgresql://r/db", "nope"]}, "replica_urls.1", "could not be"),
        ({"replica_urls": ["postgresql+psycopg://r/db"]}, "replica_urls.0", "one driver"),
        ({"bogus": True}, "bogus", "Extra inputs are not permitted"),
        (
            {"pgbouncer": True, "query": {"statement_cache_size": 100}},
            "query.statement_cache_size",
            "pgbouncer",
        ),
        (
            {"pgbouncer": True, "query": {"prepared_statement_cache_size": 1}},
            "query.prepared_statement_cache_size",
            "pgbouncer",
        ),
        (
            {"connection": {"driver": "psycopg"}, "query": {"statement_cache_size": 10}},
            "query.statement_cache_size",
            "asyncpg",
        ),
        (
            {
                "connection": {"driver": "psycopg", "query": {"options": "-c work_mem=64MB"}},
                "query": {"statement_timeout": 1},
            },
            "connection.query",
            "options",
        ),
        (
            {"url": URL_WITH_PASSWORD, "connection": {"host": "elsewhere"}},
            "connection.host",
            "disagree",
        ),
        (
            {"url": "postgresql+asyncpg://h/db", "connection": {"driver": "psycopg"}},
            "connection.driver",
            "postgresql://",
        ),
    ],
)
def test_config_errors(kwargs: dict[str, Any], path: str, hint: str) -> None:
    message = config_error(BasePostgresConfig, **kwargs)
    assert path in message
    assert hint in message
    assert message.startswith("invalid BasePostgresConfig (1 error)")


def test_every_bad_field_is_listed() -> None:
    message = config_error(
        BasePostgresConfig, pool={"size": 0, "timeout": -1}, connection={"port": 70000}
    )
    assert message.startswith("invalid BasePostgresConfig (3 errors)")
    for path in ("pool.size", "pool.timeout", "connection.port"):
        assert f"  {path}: " in message


def test_other_ways_of_validating_raise_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="size"):
        PoolSettings.model_validate({"size": 0})
    with pytest.raises(ConfigurationError, match="port"):
        ConnectionSettings.model_validate_json('{"port": 0}')
    with pytest.raises(ConfigurationError, match="statement_timeout"):
        QuerySettings.model_validate_strings({"statement_timeout": "-1"})
    with pytest.raises(ConfigurationError, match=r"pool\.size"):
        BasePostgresConfig.model_validate({"pool": {"size": 0}})


def test_settings_are_frozen() -> None:
    config = BasePostgresConfig()
    with pytest.raises(ConfigurationError, match="cannot be changed once validated"):
        config.pool.size = 50  # type: ignore[misc]
    with pytest.raises(ConfigurationError, match="cannot be changed once validated"):
        config.pgbouncer = True  # type: ignore[misc]


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="size"):
        PoolSettings(size=0)


# --- secrets ----------------------------------------------------------------------------


def test_password_is_masked_everywhere() -> None:
    config = BasePostgresConfig(
        url=URL_WITH_PASSWORD, replica_urls=[f"postgresql://app:{ENCODED_PASSWORD}@replica/db"]
    )
    assert config.connection.password.get_secret_value() == PASSWORD
    rendered = [
        repr(config),
        str(config),
        config.model_dump_json(),
        repr(config.connection),
        repr(config.primary_url()),
        str(config.primary_url()),
        str(config.replica_url(0)),
        config.masked_url(),
    ]
    for text in rendered:
        assert PASSWORD not in text
        assert ENCODED_PASSWORD not in text
    assert config.masked_url() == "postgresql+asyncpg://app:***@db.internal:6432/appdb"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": f"mysql://app:{ENCODED_PASSWORD}@h/db"},
        {"url": f"postgresql://app:{ENCODED_PASSWORD}@h:0/db"},
        {"url": f"postgresql://app:{ENCODED_PASSWORD}@h:notaport/db"},
        {"url": "postgresql://app:s3cr3t p@ss/w%rd:x@h/db"},
        {"replica_urls": [f"postgresql+psycopg://app:{ENCODED_PASSWORD}@r/db"]},
        {"url": URL_WITH_PASSWORD, "connection": {"host": "elsewhere"}},
        {"connection": {"password": PASSWORD, "port": 0}},
        {"connection": {"query": {"password": PASSWORD}}},
    ],
)
def test_password_never_in_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        BasePostgresConfig(**kwargs)
    formatted = "".join(traceback.format_exception(info.value))
    for secret in (PASSWORD, ENCODED_PASSWORD, "s3cr3t"):
        assert secret not in formatted


# --- URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["app", "we ird@us/er:%"])
@pytest.mark.parametrize("password", [PASSWORD, "plain", "+ % %41 ::@@//"])
def test_url_round_trip(user: str, password: str) -> None:
    original = BasePostgresConfig(
        connection=ConnectionSettings(
            user=user,
            password=SecretStr(password),
            host="db.internal",
            port=6432,
            database="app db",
            query={"sslmode": "require"},
        )
    )
    rendered = original.primary_url().render_as_string(hide_password=False)
    parsed = BasePostgresConfig.from_url(rendered)
    assert parsed.connection == original.connection
    assert parsed.connection.password.get_secret_value() == password
    again = parsed.primary_url().render_as_string(hide_password=False)
    assert again == rendered


def test_percent_encoded_password_is_decoded() -> None:
    config = BasePostgresConfig.from_url(URL_WITH_PASSWORD)
    assert config.connection.user == "app"
    assert config.connection.password.get_secret_value() == PASSWORD
    assert config.connection.host == "db.internal"
    assert config.connection.port == 6432
    assert config.connection.database == "appdb"
    # SQLAlchemy re-encodes '@', '/', '%' and ':' (it leaves spaces as they are).
    rendered = config.primary_url().render_as_string(hide_password=False)
    assert rendered == "postgresql+asyncpg://app:s3cr3t p%40ss%2Fw%25rd%3Ax@db.internal:6432/appdb"


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://h/db", "asyncpg"),
        ("postgres://h/db", "asyncpg"),
        ("postgresql+asyncpg://h/db", "asyncpg"),
        ("postgresql+psycopg://h/db", "psycopg"),
    ],
)
def test_accepted_schemes(url: str, driver: str) -> None:
    config = BasePostgresConfig.from_url(url)
    assert config.connection.driver == driver
    assert config.primary_url().drivername == f"postgresql+{driver}"


def test_sqlalchemy_url_objects_are_accepted() -> None:
    original = BasePostgresConfig.from_url(URL_WITH_PASSWORD)
    config = BasePostgresConfig.from_url(original.primary_url())
    assert config.connection == original.connection
    replicas = BasePostgresConfig(replica_urls=[original.primary_url()])
    assert replicas.replica_url(0) == original.primary_url()


def test_plain_url_takes_the_driver_from_connection() -> None:
    config = BasePostgresConfig(url="postgresql://h/db", connection={"driver": "psycopg"})
    assert config.connection.driver == "psycopg"
    assert config.connection.host == "h"


def test_url_fills_missing_parts_with_defaults() -> None:
    config = BasePostgresConfig.from_url("postgresql://")
    assert config.connection == ConnectionSettings()


def test_url_with_agreeing_connection_is_accepted() -> None:
    first = BasePostgresConfig.from_url(URL_WITH_PASSWORD)
    # model_dump() carries both url and connection; they agree, so rebuilding works.
    rebuilt = BasePostgresConfig(**first.model_dump())
    assert rebuilt.connection == first.connection


def test_replicas_use_the_primary_driver() -> None:
    config = BasePostgresConfig(
        url="postgresql+psycopg://p/db",
        replica_urls=["postgresql://r1/db", "postgresql+psycopg://u@r2:5433/other"],
    )
    urls = config.replica_sqlalchemy_urls()
    assert [str(url) for url in urls] == [
        "postgresql+psycopg://postgres@r1:5432/db",
        "postgresql+psycopg://u@r2:5433/other",
    ]
    assert config.replica_url(1) == urls[1]
    with pytest.raises(IndexError, match="2 replica"):
        config.replica_url(2)


# --- the environment --------------------------------------------------------------------


def test_environment_with_prefix_and_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FKIT_DB_URL", URL_WITH_PASSWORD)
    monkeypatch.setenv("FKIT_DB_POOL__SIZE", "20")
    monkeypatch.setenv("FKIT_DB_POOL__PRE_PING", "true")
    monkeypatch.setenv("FKIT_DB_QUERY__STATEMENT_TIMEOUT", "2.5")
    monkeypatch.setenv("FKIT_DB_QUERY__SEARCH_PATH", "app, public")
    monkeypatch.setenv("FKIT_DB_JIT", "off")
    monkeypatch.setenv("FKIT_DB_PGBOUNCER", "1")
    monkeypatch.setenv("FKIT_DB_REPLICA_URLS", '["postgresql://r1/db"]')
    config = BasePostgresConfig()
    assert config.connection.password.get_secret_value() == PASSWORD
    assert config.connection.host == "db.internal"
    assert config.pool.size == 20
    assert config.pool.pre_ping is True
    assert config.query.statement_timeout == 2.5
    assert config.query.search_path == ["app", "public"]
    assert config.jit is False
    assert config.pgbouncer is True
    assert [str(url) for url in config.replica_sqlalchemy_urls()] == [
        "postgresql+asyncpg://postgres@r1:5432/db"
    ]


def test_environment_connection_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FKIT_DB_CONNECTION__HOST", "db")
    monkeypatch.setenv("FKIT_DB_CONNECTION__DRIVER", "psycopg")
    monkeypatch.setenv("FKIT_DB_CONNECTION__PASSWORD", PASSWORD)
    monkeypatch.setenv("FKIT_DB_CONNECTION__QUERY__SSLMODE", "require")
    config = BasePostgresConfig()
    assert config.connection.host == "db"
    assert config.connection.query == {"sslmode": "require"}
    assert (
        str(config.primary_url())
        == "postgresql+psycopg://postgres:***@db:5432/postgres?sslmode=require"
    )


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FKIT_DB_POOL__SIZE", "20")
    monkeypatch.setenv("FKIT_DB_ECHO", "true")
    config = BasePostgresConfig(pool=PoolSettings(size=3))
    assert config.pool.size == 3
    assert config.echo is True


def test_unprefixed_environment_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "JIT": "on",
        "DB_SCHEMA": "other",
        "URL": "mysql://x",
        "POOL__SIZE": "0",
        "SEARCH_PATH": ",,",
        "STATEMENT_TIMEOUT": "-1",
        "PGBOUNCER": "yes",
        "ECHO": "1",
        "CONNECTION__HOST": "elsewhere",
        "DATABASE_URL": "mysql://y",
        "DB_URL": "mysql://z",
    }.items():
        monkeypatch.setenv(name, value)
    # model_construct() fills in the defaults without reading the environment.
    assert BasePostgresConfig() == BasePostgresConfig.model_construct()


def test_environment_errors_name_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FKIT_DB_REPLICA_URLS", f"postgresql://app:{PASSWORD}@r/db")
    message = config_error(BasePostgresConfig)
    assert "replica_urls" in message
    assert "JSON" in message
    assert "s3cr3t" not in message

    monkeypatch.delenv("FKIT_DB_REPLICA_URLS")
    monkeypatch.setenv("FKIT_DB_POOL__SIZE", "lots")
    assert "pool.size" in config_error(BasePostgresConfig)


# --- engine_kwargs ----------------------------------------------------------------------

FULL_QUERY = QuerySettings(
    statement_timeout=1.5,
    lock_timeout=0.25,
    idle_in_transaction_session_timeout=60,
    jit="off",
    application_name="fkit test",
    search_path='app, My Schema, "quoted"',
)
EXPECTED_SETTINGS = {
    "application_name": "fkit test",
    "statement_timeout": "1500",
    "lock_timeout": "250",
    "idle_in_transaction_session_timeout": "60000",
    "jit": "off",
    "search_path": '"app", "My Schema", """quoted"""',
}


def test_server_settings_strings() -> None:
    config = BasePostgresConfig(query=FULL_QUERY)
    assert server_settings_for(config) == EXPECTED_SETTINGS
    assert list(server_settings_for(config)) == list(EXPECTED_SETTINGS)
    assert server_settings_for(BasePostgresConfig()) == {}
    assert transaction_settings_for(config) == {}


def test_zero_timeout_means_disabled() -> None:
    config = BasePostgresConfig(query={"statement_timeout": 0})
    assert server_settings_for(config) == {"statement_timeout": "0"}


def test_top_level_jit_overrides_query_jit() -> None:
    config = BasePostgresConfig(jit="on", query={"jit": False})
    assert server_settings_for(config)["jit"] == "on"
    assert server_settings_for(BasePostgresConfig(query={"jit": "on"}))["jit"] == "on"
    assert server_settings_for(BasePostgresConfig(jit="off"))["jit"] == "off"


def test_default_engine_kwargs() -> None:
    assert BasePostgresConfig().engine_kwargs() == {
        "poolclass": AsyncAdaptedQueuePool,
        "pool_size": 5,
        "max_overflow": 10,
        "pool_timeout": 30.0,
        "pool_recycle": -1,
        "pool_pre_ping": False,
        "pool_use_lifo": False,
        "echo": False,
        "connect_args": {},
    }


def test_pool_engine_kwargs() -> None:
    pool = PoolSettings(size=7, max_overflow=0, timeout=2, recycle=600, pre_ping=True, lifo=True)
    kwargs = BasePostgresConfig(pool=pool, echo=True).engine_kwargs()
    assert kwargs["pool_size"] == 7
    assert kwargs["max_overflow"] == 0
    assert kwargs["pool_timeout"] == 2
    assert kwargs["pool_recycle"] == 600
    assert kwargs["pool_pre_ping"] is True
    assert kwargs["pool_use_lifo"] is True
    assert kwargs["echo"] is True


@pytest.mark.parametrize(
    ("pool", "pool_class"),
    [
        (PoolSettings(null_pool=True), NullPool),
        (PoolSettings(pool_class="NullPool"), NullPool),
        (PoolSettings(pool_class="StaticPool"), StaticPool),
    ],
)
def test_non_queue_pools_get_no_queue_arguments(pool: PoolSettings, pool_class: type) -> None:
    kwargs = BasePostgresConfig(pool=pool).engine_kwargs()
    assert kwargs["poolclass"] is pool_class
    for name in ("pool_size", "max_overflow", "pool_timeout", "pool_use_lifo"):
        assert name not in kwargs


def test_engine_kwargs_is_a_fresh_dict() -> None:
    config = BasePostgresConfig(query=FULL_QUERY)
    first = config.engine_kwargs()
    first["connect_args"]["server_settings"]["jit"] = "on"
    first["echo"] = True
    assert config.engine_kwargs()["connect_args"]["server_settings"]["jit"] == "off"
    assert config.engine_kwargs()["echo"] is False


def test_asyncpg_connect_args() -> None:
    query = FULL_QUERY.model_copy(
        update={"statement_cache_size": 50, "prepared_statement_cache_size": 0}
    )
    kwargs = BasePostgresConfig(query=query).engine_kwargs()
    assert kwargs["connect_args"] == {
        "server_settings": EXPECTED_SETTINGS,
        "statement_cache_size": 50,
        "prepared_statement_cache_size": 0,
    }


def test_psycopg_connect_args() -> None:
    config = BasePostgresConfig(connection={"driver": "psycopg"}, query=FULL_QUERY)
    assert config.engine_kwargs()["connect_args"] == {
        "application_name": "fkit test",
        "options": (
            "-c statement_timeout=1500 -c lock_timeout=250 "
            "-c idle_in_transaction_session_timeout=60000 -c jit=off "
            '-c search_path="app",\\ "My\\ Schema",\\ """quoted"""'
        ),
    }


def test_psycopg_options_escape_backslashes() -> None:
    config = BasePostgresConfig(connection={"driver": "psycopg"}, query={"search_path": ["a\\b c"]})
    assert config.engine_kwargs()["connect_args"] == {"options": '-c search_path="a\\\\b\\ c"'}


def test_psycopg_zero_cache_turns_off_prepared_statements() -> None:
    config = BasePostgresConfig(
        connection={"driver": "psycopg"}, query={"prepared_statement_cache_size": 0}
    )
    assert config.engine_kwargs()["connect_args"] == {"prepare_threshold": None}


def test_seed_pgbouncer_example_is_accepted() -> None:
    config = BasePostgresConfig(
        connection=ConnectionSettings(host="pgbouncer", port=6432),
        pool=PoolSettings(size=20, max_overflow=0),
        query=QuerySettings(statement_cache_size=0, prepared_statement_cache_size=0),
        jit="off",
    )
    connect_args = config.engine_kwargs()["connect_args"]
    assert connect_args["statement_cache_size"] == 0
    assert connect_args["prepared_statement_cache_size"] == 0
    assert connect_args["server_settings"] == {"jit": "off"}


def test_pgbouncer_asyncpg_kwargs() -> None:
    plain = BasePostgresConfig(query=FULL_QUERY)
    config = BasePostgresConfig(query=FULL_QUERY, pgbouncer=True)
    kwargs = config.engine_kwargs()
    connect_args = kwargs.pop("connect_args")
    plain_kwargs = plain.engine_kwargs()
    plain_kwargs.pop("connect_args")
    assert kwargs == plain_kwargs  # pool defaults stay
    name_func = connect_args.pop("prepared_statement_name_func")
    assert connect_args == {
        "server_settings": {"application_name": "fkit test"},
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
    }
    names = {name_func() for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith("__asyncpg_") for name in names)
    assert transaction_settings_for(config) == {
        name: value for name, value in EXPECTED_SETTINGS.items() if name != "application_name"
    }


def test_pgbouncer_psycopg_kwargs() -> None:
    config = BasePostgresConfig(connection={"driver": "psycopg"}, query=FULL_QUERY, pgbouncer=True)
    assert config.engine_kwargs()["connect_args"] == {
        "application_name": "fkit test",
        "prepare_threshold": None,
    }
    assert "statement_timeout" in transaction_settings_for(config)


def test_pgbouncer_accepts_explicit_zero_caches() -> None:
    config = BasePostgresConfig(
        pgbouncer=True, query={"statement_cache_size": 0, "prepared_statement_cache_size": 0}
    )
    assert config.engine_kwargs()["connect_args"]["statement_cache_size"] == 0


def test_connection_in_code_wins_over_a_url_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FKIT_DB_URL", "postgresql://envuser:envpw@envhost:5433/envdb")
    config = BasePostgresConfig(connection=ConnectionSettings(host="codehost", user="codeuser"))
    assert config.url is None
    assert (config.connection.host, config.connection.user) == ("codehost", "codeuser")
    assert BasePostgresConfig().connection.host == "envhost"
