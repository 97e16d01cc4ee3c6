"""pgbouncer: it pools in transaction mode, fkit-core works through it, and it goes away."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING

import asyncpg
import pytest
from sqlalchemy import text

from fkit_core import AsyncSessionManager
from fkit_core.settings import BasePostgresConfig, QuerySettings
from fkit_testing import (
    LauncherError,
    PgBouncer,
    find_pgbouncer,
    find_postgres_bindir,
    launch_pgbouncer,
    launch_postgres,
)
from fkit_testing import _bouncer_setup as bouncer_setup

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from fkit_testing import WorkerDatabase

APT_HINT = "apt-get install pgbouncer"


@pytest.fixture(scope="module")
def one_backend(fkit_database_url: str) -> Iterator[PgBouncer]:
    """pgbouncer in transaction mode with a single server connection."""
    with launch_pgbouncer(fkit_database_url, default_pool_size=1) as bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def two_backends(fkit_database_url: str) -> Iterator[PgBouncer]:
    """pgbouncer in transaction mode with at most two server connections."""
    with launch_pgbouncer(fkit_database_url, default_pool_size=2) as bouncer:
        yield bouncer


def with_driver(url: str, driver: str) -> str:
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


async def system_identifier(url: str) -> int:
    conn = await asyncpg.connect(url, statement_cache_size=0)
    try:
        value = await conn.fetchval("select system_identifier from pg_control_system()")
    finally:
        await conn.close()
    assert isinstance(value, int)
    return value


@pytest.mark.asyncio
async def test_clients_share_one_backend_in_transaction_mode(one_backend: PgBouncer) -> None:
    assert one_backend.pool_mode == "transaction"
    first = await asyncpg.connect(one_backend.url, statement_cache_size=0)
    second = await asyncpg.connect(one_backend.url, statement_cache_size=0)
    try:
        # Both clients are connected at once; session pooling would need two backends.
        pids = [await conn.fetchval("select pg_backend_pid()") for conn in (first, second)]
        pids += [await conn.fetchval("select pg_backend_pid()") for conn in (second, first)]
    finally:
        await first.close()
        await second.close()
    assert len(set(pids)) == 1


@pytest.mark.asyncio
async def test_pgbouncer_fronts_the_test_server(
    fkit_pgbouncer_url: str, fkit_database_url: str, fkit_worker_database: WorkerDatabase
) -> None:
    assert fkit_pgbouncer_url.startswith("postgresql://")
    assert fkit_pgbouncer_url != fkit_database_url
    # The worker's own database, on the same server.
    assert fkit_pgbouncer_url.rsplit("/", 1)[1] == fkit_worker_database.name
    assert await system_identifier(fkit_pgbouncer_url) == await system_identifier(fkit_database_url)
    # pgbouncer answers its own SHOW commands on the admin console.
    psql = find_postgres_bindir() / "psql"
    admin = fkit_pgbouncer_url.rsplit("/", 1)[0] + "/pgbouncer"
    process = await asyncio.create_subprocess_exec(
        psql, "-X", "-A", "-t", "-d", admin, "-c", "SHOW CONFIG", stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    config = dict(line.split("|")[:2] for line in stdout.decode().splitlines())
    assert config["pool_mode"] == "transaction"
    assert config["ignore_startup_parameters"] == "extra_float_digits"


@pytest.mark.asyncio
async def test_ignored_startup_parameter_is_accepted(one_backend: PgBouncer) -> None:
    conn = await asyncpg.connect(
        one_backend.url, statement_cache_size=0, server_settings={"extra_float_digits": "3"}
    )
    try:
        assert await conn.fetchval("select 1") == 1
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_fkit_core_works_through_pgbouncer(two_backends: PgBouncer, driver: str) -> None:
    config = BasePostgresConfig(
        url=with_driver(two_backends.url, driver),
        pgbouncer=True,
        query=QuerySettings(statement_timeout=1.5),
    )
    manager = AsyncSessionManager(config, plugins=[], autoload=False)
    await manager.start()

    async def work(n: int) -> tuple[int, str, int]:
        async with manager.get_transaction() as session:
            assert (await session.execute(text("select 1"))).scalar_one() == 1
            doubled = (await session.execute(text("select :n * 2"), {"n": n})).scalar_one()
            timeout = (await session.execute(text("show statement_timeout"))).scalar_one()
            pid = (await session.execute(text("select pg_backend_pid()"))).scalar_one()
        assert doubled == n * 2
        return pid, timeout, doubled

    try:
        # More concurrent transactions than server connections: pgbouncer hands each
        # transaction whichever backend is free, so statements move between backends.
        results = await asyncio.gather(*(work(n) for n in range(12)))
        results += await asyncio.gather(*(work(n) for n in range(12)))
    finally:
        await manager.close()
    assert {timeout for _, timeout, _ in results} == {"1500ms"}
    assert len({pid for pid, _, _ in results}) <= 2
    assert sorted(doubled for _, _, doubled in results) == sorted([2 * n for n in range(12)] * 2)


def test_stop_removes_pgbouncer_and_its_directory(
    fkit_database_url: str, process_gone: Callable[[int], bool]
) -> None:
    bouncer = PgBouncer(fkit_database_url)
    assert repr(bouncer) == "<PgBouncer not running>"
    with pytest.raises(LauncherError, match="not running"):
        _ = bouncer.url
    bouncer.start()
    assert repr(bouncer) == f"<PgBouncer {bouncer.url}>"
    pid, reaper, directory, port = bouncer.pid, bouncer.reaper_pid, bouncer.directory, bouncer.port
    assert directory.name.startswith("fkit-pg-bouncer-")
    assert bouncer.log_path.parent == directory
    assert not process_gone(pid)
    with pytest.raises(LauncherError, match="already running"):
        bouncer.start()
    bouncer.stop()
    assert not bouncer.running
    assert process_gone(pid)
    assert process_gone(reaper)
    assert not directory.exists()
    assert port_closed(port)
    bouncer.stop()  # a second stop does nothing


async def current_user_through(direct: str, bouncer_url: str) -> object:
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(direct)
    conn = await asyncpg.connect(bouncer_url, statement_cache_size=0)
    try:
        return await conn.fetchval("select current_user")
    finally:
        await conn.close()


def test_pgbouncer_logs_in_to_the_server_with_the_urls_password(reachable_base: Path) -> None:
    with launch_postgres(base_dir=reachable_base) as server:
        server.psql("create role fkit_pw login password 'se''cr et\"'")
        hba = server.data_dir / "pg_hba.conf"
        hba.write_text("host all fkit_pw 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        server.psql("select pg_reload_conf()")
        wrong = f"postgresql://fkit_pw:wrong@127.0.0.1:{server.port}/postgres"
        with launch_pgbouncer(
            f"postgresql+asyncpg://fkit_pw:se%27cr%20et%22@127.0.0.1:{server.port}/postgres"
        ) as bouncer:
            assert bouncer.url == f"postgresql://fkit_pw@127.0.0.1:{bouncer.port}/postgres"
            assert "cr et" not in (bouncer.directory / "pgbouncer.ini").read_text()
            assert (bouncer.directory / "userlist.txt").stat().st_mode & 0o077 == 0
            assert asyncio.run(current_user_through(wrong, bouncer.url)) == "fkit_pw"
    assert list(reachable_base.iterdir()) == []


def test_invalid_setting_reports_pgbouncers_error_and_cleans_up(
    fkit_database_url: str, reachable_base: Path
) -> None:
    with pytest.raises(LauncherError, match=r"starting pgbouncer failed(.|\n)*pool_mode"):
        PgBouncer(
            fkit_database_url, settings={"pool_mode": "banana"}, base_dir=reachable_base
        ).start()
    assert list(reachable_base.iterdir()) == []


def test_unknown_pool_mode_is_an_error(fkit_database_url: str) -> None:
    with pytest.raises(LauncherError, match="pool_mode must be one of session, transaction"):
        PgBouncer(fkit_database_url, pool_mode="banana")  # type: ignore[arg-type]


def test_missing_pgbouncer_says_how_to_install_it(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, fkit_database_url: str
) -> None:
    clean_env.setenv("PATH", str(tmp_path))
    clean_env.setattr(bouncer_setup, "_FALLBACK_DIRS", ())
    with pytest.raises(LauncherError, match=f"pgbouncer is not installed.*{APT_HINT}"):
        find_pgbouncer()
    with pytest.raises(LauncherError, match=f"pgbouncer is not installed.*{APT_HINT}"):
        PgBouncer(fkit_database_url).start()
    with pytest.raises(LauncherError, match=f"binary=.*{APT_HINT}"):
        find_pgbouncer(tmp_path / "pgbouncer")


def test_pgbouncer_binary_from_the_environment(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed = find_pgbouncer()
    assert installed.name == "pgbouncer"
    clean_env.setenv("FKIT_TEST_PGBOUNCER", str(installed))
    clean_env.setenv("PATH", str(tmp_path))
    assert find_pgbouncer() == installed
    clean_env.setenv("FKIT_TEST_PGBOUNCER", str(tmp_path / "missing"))
    with pytest.raises(LauncherError, match=f"FKIT_TEST_PGBOUNCER.*{APT_HINT}"):
        find_pgbouncer()
    assert os.access(installed, os.X_OK)
