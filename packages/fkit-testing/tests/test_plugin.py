"""The pytest plugin, exercised the way a user's suite uses it (pytester subprocesses)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from fkit_testing import launch_postgres

if TYPE_CHECKING:
    from collections.abc import Callable

pytest_plugins = ["pytester"]

HANG_GUARD = 180.0
INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
filterwarnings = error
{extra}
"""

# A user's suite: it records what it saw in seen.txt for the outer test to check.
VERSION_SUITE = """
import asyncpg
import pytest


async def fetch(url, sql):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_server(fkit_database_url):
    assert fkit_database_url.startswith("postgresql://")
    version = await fetch(fkit_database_url, "show server_version_num")
    data_dir = await fetch(fkit_database_url, "show data_directory")
    with open("seen.txt", "a") as seen:
        seen.write(f"{fkit_database_url} {version[:2]} {data_dir}\\n")


def test_same_url_for_the_session(fkit_database_url):
    with open("seen.txt") as seen:
        assert seen.read().split()[0] == fkit_database_url
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run(pytester: pytest.Pytester, *args: str, extra_ini: str = "") -> pytest.RunResult:
    pytester.makeini(INI.format(extra=extra_ini))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=HANG_GUARD)


def seen(pytester: pytest.Pytester) -> tuple[str, str, Path]:
    url, version, data_dir = (pytester.path / "seen.txt").read_text().split()
    return url, version, Path(data_dir)


def test_throwaway_server_for_the_session(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(VERSION_SUITE)
    run(pytester).assert_outcomes(passed=2)
    url, version, data_dir = seen(pytester)
    assert version == "18"  # the embedded wheel comes first
    assert url.startswith("postgresql://postgres@127.0.0.1:")
    # Removed when the session ended.
    assert not data_dir.exists()
    assert not data_dir.parent.exists()


def test_env_url_is_used_as_given(pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(VERSION_SUITE)
    with launch_postgres(prefer="system") as server:
        # A driver suffix is dropped: the fixture returns a plain URL.
        clean_env.setenv("FKIT_TEST_DATABASE_URL", server.url.replace("://", "+asyncpg://"))
        run(pytester).assert_outcomes(passed=2)
        url, version, data_dir = seen(pytester)
        assert url == server.url
        assert version == "15"
        assert data_dir == server.data_dir


def test_env_url_at_a_closed_port_errors(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    clean_env.setenv("FKIT_TEST_DATABASE_URL", f"postgresql://app:s3cret@127.0.0.1:{port}/app")
    pytester.makepyfile("def test_needs_db(fkit_database_url): pass")
    result = run(pytester, "--showlocals", "--tb=long")
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "DatabaseUnavailableError" in output
    assert f"FKIT_TEST_DATABASE_URL is postgresql://app:***@127.0.0.1:{port}/app" in output
    assert "no PostgreSQL server answers there" in output
    assert "s3cret" not in output
    assert "skipped" not in output


@pytest.mark.parametrize(
    ("args", "extra_ini", "version"),
    [
        (["--fkit-pg=system"], "", "15"),
        ([], "fkit_pg = system", "15"),
        (["--fkit-pg=embedded"], "fkit_pg = system", "18"),
    ],
)
def test_fkit_pg_chooses_the_source(
    pytester: pytest.Pytester,
    clean_env: pytest.MonkeyPatch,
    args: list[str],
    extra_ini: str,
    version: str,
) -> None:
    # An unusable FKIT_TEST_DATABASE_URL proves that an explicit choice ignores it.
    clean_env.setenv("FKIT_TEST_DATABASE_URL", f"postgresql://u@127.0.0.1:{closed_port()}/d")
    pytester.makepyfile(VERSION_SUITE)
    run(pytester, *args, extra_ini=extra_ini).assert_outcomes(passed=2)
    assert seen(pytester)[1] == version


def test_fkit_pg_env_without_url_errors(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_needs_db(fkit_database_url): pass")
    result = run(pytester, "--fkit-pg=env")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ConfigurationError*needs FKIT_TEST_DATABASE_URL*not set*"])


def test_bad_fkit_pg_ini_value_is_a_usage_error(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester, extra_ini="fkit_pg = docker")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fkit_pg must be one of auto, env, embedded, system*docker*"])


@pytest.mark.parametrize(("value", "expected"), [(None, "asyncpg"), ("psycopg", "psycopg")])
def test_fkit_driver(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, value: str | None, expected: str
) -> None:
    if value is not None:
        clean_env.setenv("FKIT_TEST_DRIVER", value)
    pytester.makepyfile(f"def test_driver(fkit_driver): assert fkit_driver == {expected!r}")
    run(pytester).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, ["asyncpg", "psycopg"]), ("psycopg", ["psycopg"])]
)
def test_fkit_each_driver_runs_a_test_once_per_driver(
    pytester: pytest.Pytester,
    clean_env: pytest.MonkeyPatch,
    fkit_database_url: str,
    value: str | None,
    expected: list[str],
) -> None:
    clean_env.setenv("FKIT_TEST_DATABASE_URL", fkit_database_url)
    if value is not None:
        clean_env.setenv("FKIT_TEST_DRIVER", value)
    pytester.makepyfile(
        "def test_url(fkit_each_driver, fkit_each_driver_url, fkit_database_url):\n"
        "    scheme = f'postgresql+{fkit_each_driver}://'\n"
        "    assert fkit_each_driver_url == fkit_database_url.replace('postgresql://', scheme)\n"
    )
    result = run(pytester, "-v")
    result.assert_outcomes(passed=len(expected))
    result.stdout.fnmatch_lines([f"*test_url?{driver}? PASSED*" for driver in expected])


@pytest.mark.parametrize("fixture", ["fkit_driver", "fkit_each_driver"])
def test_unknown_fkit_driver_errors(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, fixture: str
) -> None:
    clean_env.setenv("FKIT_TEST_DRIVER", "mysqlclient")
    pytester.makepyfile(f"def test_driver({fixture}): pass")
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*FKIT_TEST_DRIVER must be one of asyncpg, psycopg*mysqlclient*"])


MANAGER_SUITE = """
import pytest
from sqlalchemy import text


class RecordingPlugin:
    name = "recording"

    def __init__(self):
        self.managers = []

    def setup(self, manager):
        self.managers.append(manager)


PLUGIN = RecordingPlugin()


@pytest.mark.asyncio
@pytest.mark.fkit_plugins(PLUGIN)
async def test_manager_with_plugin(fkit_manager, fkit_driver, fkit_worker_database):
    assert PLUGIN.managers == [fkit_manager]
    assert fkit_manager.engine.url.drivername == f"postgresql+{fkit_driver}"
    assert fkit_manager.engine.url.database == fkit_worker_database.name
    async with fkit_manager.engine.connect() as conn:
        assert (await conn.execute(text("select 1"))).scalar_one() == 1
    async with fkit_manager.session_maker() as session:
        assert (await session.execute(text("select 2"))).scalar_one() == 2


@pytest.mark.asyncio
async def test_no_plugins_by_default(fkit_manager):
    assert PLUGIN.managers != []  # the other test ran first, on its own manager
    assert list(fkit_manager.plugins) == []
"""


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_fkit_manager(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, driver: str
) -> None:
    clean_env.setenv("FKIT_TEST_DRIVER", driver)
    pytester.makepyfile(MANAGER_SUITE)
    run(pytester, "--strict-markers").assert_outcomes(passed=2)


REPLICA_AND_PGBOUNCER_SUITE = """
import json

import asyncpg
import pytest
from sqlalchemy import text

from fkit_core import AsyncSQLAlchemyUnitOfWork

IDENTIFIER = "select system_identifier from pg_control_system()"


async def fetch(url, sql):
    conn = await asyncpg.connect(url, statement_cache_size=0)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def record(**facts):
    try:
        with open("seen.json") as seen:
            known = json.load(seen)
    except FileNotFoundError:
        known = {}
    with open("seen.json", "w") as seen:
        json.dump({**known, **facts}, seen)


def describe(server):
    return dict(pid=server.pid, reaper=server.reaper_pid, directory=str(server.directory))


@pytest.mark.asyncio
async def test_replica_pair(fkit_replica_pair, fkit_database_url):
    pair = fkit_replica_pair
    assert pair.primary_url != fkit_database_url  # always servers of its own
    conn = await asyncpg.connect(pair.primary_url)
    await conn.execute("create table t as select 7 as n")
    await conn.close()
    pair.wait_for_replay()
    assert await fetch(pair.replica_url, "select n from t") == 7
    record(primary=describe(pair.primary), replica=describe(pair.replica))


@pytest.mark.asyncio
async def test_pgbouncer(fkit_pgbouncer, fkit_pgbouncer_url, fkit_database_url, fkit_worker_database):
    # The worker's own database, through pgbouncer.
    assert fkit_pgbouncer_url == fkit_pgbouncer.database_url(fkit_worker_database.name)
    assert fkit_pgbouncer.pool_mode == "transaction"
    through = await fetch(fkit_pgbouncer_url, IDENTIFIER)
    assert through == await fetch(fkit_database_url, IDENTIFIER)
    assert await fetch(fkit_pgbouncer_url, "select current_database()") == fkit_worker_database.name
    record(bouncer={**describe(fkit_pgbouncer), "port": fkit_pgbouncer.port}, identifier=through)


@pytest.mark.asyncio
@pytest.mark.fkit_pgbouncer
@pytest.mark.parametrize("attempt", [1, 2])
async def test_manager_through_pgbouncer(fkit_manager, fkit_pgbouncer, fkit_worker_database, attempt):
    assert fkit_manager.config.pgbouncer
    assert fkit_manager.engine.url.port == fkit_pgbouncer.port
    async with fkit_manager.get_transaction() as session:
        assert await session.scalar(text("select current_database()")) == fkit_worker_database.name
        assert await session.scalar(text("select count(*) from notes")) == 0  # rolled back
        await session.execute(text("insert into notes (body) values ('through pgbouncer')"))


@pytest.mark.asyncio
@pytest.mark.fkit_replica
@pytest.mark.parametrize("attempt", [1, 2])
async def test_manager_reads_from_the_replica(fkit_manager, fkit_replica_pair, fkit_replica_pair_database, attempt):
    assert list(fkit_manager.engines) == ["primary", "replica-1"]
    assert fkit_manager.engine.url.port == fkit_replica_pair.primary.port
    uow = AsyncSQLAlchemyUnitOfWork(fkit_manager)
    async with uow.transaction() as tx:
        await tx.session.execute(text("insert into notes (body) values ('replicated')"))
    fkit_replica_pair.wait_for_replay()
    async with uow.query(replica=True) as qx:
        assert await qx.session.scalar(text("select pg_is_in_recovery()")) is True
        assert await qx.session.scalar(text("select current_database()")) == fkit_replica_pair_database.name
        # One row, in both attempts: the first attempt's row was truncated and replayed.
        assert await qx.session.scalar(text("select count(*) from notes")) == 1
"""

# The schema of the suite's databases, on every server it uses.
NOTES_SCHEMA = """
import pytest
from sqlalchemy import text


@pytest.fixture(scope="session")
def fkit_schema():
    async def build(conn):
        await conn.execute(text("create table notes (id serial primary key, body text)"))

    return build
"""


def test_replica_pair_and_pgbouncer_fixtures(
    pytester: pytest.Pytester,
    clean_env: pytest.MonkeyPatch,
    fkit_database_url: str,
    process_gone: Callable[[int], bool],
) -> None:
    # The suite's FKIT_TEST_DATABASE_URL is this session's server, whichever it is:
    # pgbouncer must front that server, and the pair must be servers of its own.
    clean_env.setenv("FKIT_TEST_DATABASE_URL", fkit_database_url)
    pytester.makepyfile(REPLICA_AND_PGBOUNCER_SUITE)
    pytester.makeconftest(NOTES_SCHEMA)
    run(pytester, "--strict-markers").assert_outcomes(passed=6)
    seen = json.loads((pytester.path / "seen.json").read_text())
    assert seen["identifier"] == asyncio.run(system_identifier(fkit_database_url))
    for name in ("primary", "replica", "bouncer"):
        assert process_gone(seen[name]["pid"]), name
        assert process_gone(seen[name]["reaper"]), name
        assert not Path(seen[name]["directory"]).exists(), name
    assert port_is_closed(seen["bouncer"]["port"])


def port_is_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


async def system_identifier(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval("select system_identifier from pg_control_system()")
    finally:
        await conn.close()
    assert isinstance(value, int)
    return value
