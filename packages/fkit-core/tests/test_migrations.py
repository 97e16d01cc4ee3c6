"""Alembic migrations: ``run_migrations``, ``fkit migrations``, and the settings that ask for them.

Every database test runs on a database of its own, created for it on the test server
and dropped afterwards, because migrations change the schema for every session.
"""

from __future__ import annotations

import asyncio
import configparser
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote
from uuid import uuid4

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fkit_core import AsyncSessionManager, downgrade_migrations, run_migrations
from fkit_core.cli import main as fkit_main
from fkit_core.errors import ConfigurationError, MigrationError, MissingDependencyError
from fkit_core.settings import BasePostgresConfig, MigrationSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncConnection

# Sent with every URL below; the test servers trust local connections, so it is never
# checked, but it must never be written to a file or a log line. "%" would break
# configparser interpolation if it ever reached alembic.ini.
PASSWORD = "s3cr%t-p@ss:w/rd"
# The revision below waits for this advisory lock, which the test holds: the migration
# is then provably in progress until the test lets go.
GATE = 727_001
# Hang guard only: the tests never measure time.
GUARD = 120


def _with_password(url: str) -> str:
    parsed = make_url(url)
    if parsed.password is None:
        parsed = parsed.set(password=PASSWORD)
    return parsed.render_as_string(hide_password=False)


@pytest_asyncio.fixture
async def fresh_url(fkit_database_url: str, driver: str) -> AsyncIterator[str]:
    """A new, empty database on the test server, as a URL with the driver and a password."""
    name = f"fkit_mig_{uuid4().hex[:12]}"
    server = make_url(fkit_database_url).set(drivername=f"postgresql+{driver}")
    admin = AsyncSessionManager(
        server.render_as_string(hide_password=False), plugins=[], autoload=False, name="admin"
    )
    await admin.start()
    try:
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield _with_password(server.set(database=name).render_as_string(hide_password=False))
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def fresh(fresh_url: str) -> AsyncIterator[AsyncSessionManager]:
    """A started manager on the fresh database."""
    manager = AsyncSessionManager(fresh_url, plugins=[], autoload=False)
    await manager.start()
    yield manager
    await manager.close()


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    """``fkit migrations init`` run into a temporary directory; the alembic.ini it wrote."""
    assert fkit_main(["migrations", "init", str(tmp_path / "db")]) == 0
    return tmp_path / "db" / "alembic.ini"


def write_revision(ini: Path, rev: str, down: str | None, *upgrade: str) -> None:
    """A revision file in the environment's versions/ whose upgrade runs ``upgrade``."""
    lines = [
        f'"""Revision {rev}."""',
        "import sqlalchemy as sa",
        "from alembic import op",
        f"revision = {rev!r}",
        f"down_revision = {down!r}",
        "branch_labels = None",
        "depends_on = None",
        "def upgrade() -> None:",
        *(f"    {line}" for line in upgrade),
        "def downgrade() -> None:",
        f"    op.execute('DROP TABLE IF EXISTS {rev}')",
    ]
    (ini.parent / "migrations" / "versions" / f"{rev}.py").write_text("\n".join(lines) + "\n")


def write_gated_revision(ini: Path) -> None:
    """Revision r1, which creates table t once it gets the GATE advisory lock."""
    write_revision(
        ini,
        "r1",
        None,
        # Hang guard: were the event loop blocked, the test could never let go of the gate.
        f"op.execute(\"SET LOCAL lock_timeout = '{GUARD // 2}s'\")",
        f"op.execute('SELECT pg_advisory_xact_lock({GATE})')",
        create_table("t"),
    )


def create_table(name: str) -> str:
    return f"op.create_table({name!r}, sa.Column('id', sa.Integer, primary_key=True))"


async def tables(manager: AsyncSessionManager) -> set[str]:
    async with manager.get_session() as session:
        rows = await session.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )
        return set(rows.scalars())


async def versions(manager: AsyncSessionManager) -> list[str]:
    async with manager.get_session() as session:
        rows = await session.execute(text("SELECT version_num FROM alembic_version"))
        return list(rows.scalars())


async def advisory_waiters(conn: AsyncConnection) -> int:
    """Backends of this database waiting for an advisory lock."""
    waiting = await conn.scalar(
        text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    )
    await conn.commit()
    return int(waiting or 0)


async def wait_for_waiters(conn: AsyncConnection, count: int, *tasks: asyncio.Task[None]) -> None:
    while await advisory_waiters(conn) < count:
        for task in tasks:
            if task.done():
                task.result()  # a migration that failed instead of waiting: show why
                pytest.fail("a migration finished while it should wait for the gate lock")
        await asyncio.sleep(0.01)


def _shell(*argv: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FKIT_DB_")}
    env["FKIT_DB_URL"] = url
    return subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=GUARD, check=False
    )


def _secrets() -> tuple[str, ...]:
    return (PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD))


# --- running migrations ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_upgrade_creates_the_table_and_records_the_revision(
    fresh: AsyncSessionManager, ini: Path
) -> None:
    write_revision(ini, "r1", None, create_table("things"))
    async with asyncio.timeout(GUARD):
        await run_migrations(fresh, ini)
    assert "things" in await tables(fresh)
    assert await versions(fresh) == ["r1"]


@pytest.mark.asyncio
async def test_running_again_is_a_no_op(fresh: AsyncSessionManager, ini: Path) -> None:
    write_revision(ini, "r1", None, create_table("things"))
    async with asyncio.timeout(GUARD):
        await run_migrations(fresh, str(ini))
        async with fresh.get_transaction() as session:
            await session.execute(text("INSERT INTO things (id) VALUES (7)"))
        await run_migrations(fresh, ini, revision="head")
    assert await versions(fresh) == ["r1"]
    async with fresh.get_session() as session:
        # The table was not dropped and re-created: the row is still there.
        assert (await session.execute(text("SELECT id FROM things"))).scalars().all() == [7]


@pytest.mark.asyncio
async def test_a_failing_revision_raises_and_rolls_its_ddl_back(
    fresh: AsyncSessionManager, ini: Path
) -> None:
    write_revision(ini, "r1", None, create_table("kept"))
    async with asyncio.timeout(GUARD):
        await run_migrations(fresh, ini)
    write_revision(ini, "r2", "r1", create_table("doomed"), "op.execute('SELEKT 1')")
    with pytest.raises(MigrationError) as caught:
        async with asyncio.timeout(GUARD):
            await run_migrations(fresh, ini)
    error = caught.value
    assert isinstance(error, RuntimeError)
    assert error.__cause__ is not None
    assert "SQLSTATE 42601" in str(error)  # syntax error, reported by the server
    assert "***" in str(error)  # the masked URL says where
    present = await tables(fresh)
    assert "doomed" not in present  # transactional DDL: r2's CREATE TABLE rolled back
    assert "kept" in present
    assert await versions(fresh) == ["r1"]


@pytest.mark.asyncio
async def test_an_unknown_revision_is_a_migration_error(
    fresh: AsyncSessionManager, ini: Path
) -> None:
    write_revision(ini, "r1", None, create_table("things"))
    with pytest.raises(MigrationError, match="nope"):
        async with asyncio.timeout(GUARD):
            await run_migrations(fresh, ini, revision="nope")
    assert "things" not in await tables(fresh)


@pytest.mark.asyncio
async def test_downgrade_migrations(fresh: AsyncSessionManager, ini: Path) -> None:
    write_revision(ini, "r1", None, create_table("r1"))
    write_revision(ini, "r2", "r1", create_table("r2"))
    async with asyncio.timeout(GUARD):
        await run_migrations(fresh, ini)
        assert {"r1", "r2"} <= await tables(fresh)
        await downgrade_migrations(fresh, ini, "-1")
        assert await versions(fresh) == ["r1"]
        assert "r2" not in await tables(fresh)
        await downgrade_migrations(fresh, ini, "base")
    assert await versions(fresh) == []
    assert "r1" not in await tables(fresh)


@pytest.mark.asyncio
async def test_the_manager_need_not_be_started(fresh_url: str, ini: Path) -> None:
    write_revision(ini, "r1", None, create_table("things"))
    unstarted = AsyncSessionManager(fresh_url, plugins=[], autoload=False)
    async with asyncio.timeout(GUARD):
        await run_migrations(unstarted, ini)
    assert unstarted.state == "new"
    async with unstarted:
        assert await versions(unstarted) == ["r1"]


@pytest.mark.asyncio
async def test_a_missing_ini_is_a_configuration_error(
    fresh: AsyncSessionManager, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="fkit migrations init"):
        await run_migrations(fresh, tmp_path / "nowhere" / "alembic.ini")
    with pytest.raises(ConfigurationError, match="revision"):
        await run_migrations(fresh, tmp_path, revision="")


# --- the event loop stays free -----------------------------------------------------------


@pytest.mark.asyncio
async def test_migrations_do_not_block_the_event_loop(
    fresh: AsyncSessionManager, ini: Path
) -> None:
    write_gated_revision(ini)
    ticks = 0
    goal: int | None = None
    reached = asyncio.Event()
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            if goal is not None and ticks >= goal:
                reached.set()
            await asyncio.sleep(0)

    async with asyncio.timeout(GUARD), fresh.engine.connect() as gate:
        await gate.execute(text(f"SELECT pg_advisory_lock({GATE})"))
        await gate.commit()
        ticking = asyncio.create_task(ticker())
        migrating = asyncio.create_task(run_migrations(fresh, ini))
        await wait_for_waiters(gate, 1, migrating)
        # From here the migration is running, stopped at the gate in its transaction.
        at_gate = ticks
        goal = at_gate + 100
        await reached.wait()
        assert not migrating.done()
        await gate.execute(text(f"SELECT pg_advisory_unlock({GATE})"))
        await gate.commit()
        await migrating
        stop.set()
        await ticking
    # The other task ran at least 100 times while the migration was in progress.
    assert ticks >= at_gate + 100
    assert await versions(fresh) == ["r1"]


@pytest.mark.asyncio
async def test_cancelling_waits_for_alembic_to_finish(
    fresh: AsyncSessionManager, ini: Path
) -> None:
    write_gated_revision(ini)
    async with asyncio.timeout(GUARD), fresh.engine.connect() as gate:
        await gate.execute(text(f"SELECT pg_advisory_lock({GATE})"))
        await gate.commit()
        migrating = asyncio.create_task(run_migrations(fresh, ini))
        await wait_for_waiters(gate, 1, migrating)
        migrating.cancel()
        for _ in range(50):
            await asyncio.sleep(0)
        # Alembic is still blocked at the gate, so the cancelled call is still waiting for it.
        assert not migrating.done()
        await gate.execute(text(f"SELECT pg_advisory_unlock({GATE})"))
        await gate.commit()
        with pytest.raises(asyncio.CancelledError):
            await migrating
    # Alembic finished (and committed) before the cancellation came through.
    assert await versions(fresh) == ["r1"]


@pytest.mark.asyncio
async def test_a_run_cancelled_before_its_turn_never_starts(
    fresh: AsyncSessionManager, ini: Path
) -> None:
    write_gated_revision(ini)
    async with asyncio.timeout(GUARD), fresh.engine.connect() as gate:
        await gate.execute(text(f"SELECT pg_advisory_lock({GATE})"))
        await gate.commit()
        upgrading = asyncio.create_task(run_migrations(fresh, ini))
        await wait_for_waiters(gate, 1, upgrading)
        # The upgrade holds this process's turn; the downgrade queues behind it.
        downgrading = asyncio.create_task(downgrade_migrations(fresh, ini, "base"))
        await asyncio.sleep(0)
        downgrading.cancel()
        await gate.execute(text(f"SELECT pg_advisory_unlock({GATE})"))
        await gate.commit()
        await upgrading
        with pytest.raises(asyncio.CancelledError):
            await downgrading
    assert await versions(fresh) == ["r1"]  # the downgrade never ran
    assert "t" in await tables(fresh)


@pytest.mark.asyncio
async def test_concurrent_runs_apply_each_revision_once(
    fresh: AsyncSessionManager, fresh_url: str, ini: Path
) -> None:
    """Instances started together with run_on_start: one migrates, the others then do nothing.

    Two runs in this process (Alembic's module-level state makes them take turns) and one
    `alembic upgrade head` in another process (which waits on env.py's advisory lock).
    """
    write_gated_revision(ini)
    alembic = str(Path(sys.executable).with_name("alembic"))
    async with asyncio.timeout(GUARD), fresh.engine.connect() as gate:
        await gate.execute(text(f"SELECT pg_advisory_lock({GATE})"))
        await gate.commit()
        first = asyncio.create_task(run_migrations(fresh, ini))
        await wait_for_waiters(gate, 1, first)
        second = asyncio.create_task(run_migrations(fresh, ini))
        other_process = asyncio.create_task(
            asyncio.to_thread(_shell, alembic, "upgrade", "head", url=fresh_url, cwd=ini.parent)
        )
        # The first run waits at the gate inside r1; the other process waits for the
        # migration lock that the first run's env.py holds.
        await wait_for_waiters(gate, 2, first, second)
        assert not other_process.done()
        await gate.execute(text(f"SELECT pg_advisory_unlock({GATE})"))
        await gate.commit()
        await asyncio.gather(first, second)
        result = await other_process
    assert result.returncode == 0, result.stderr
    assert "Running upgrade" not in result.stderr  # it found the database up to date
    assert await versions(fresh) == ["r1"]
    assert "t" in await tables(fresh)


# --- no secrets written or logged --------------------------------------------------------


@pytest.mark.asyncio
async def test_the_password_is_never_written_or_logged(
    fresh: AsyncSessionManager, ini: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    write_revision(ini, "r1", None, create_table("things"))
    write_revision(ini, "r2", "r1", "op.execute('SELEKT 1')")
    assert fresh.config.connection.password.get_secret_value() == PASSWORD
    async with asyncio.timeout(GUARD):
        await run_migrations(fresh, ini, revision="r1")
        with pytest.raises(MigrationError) as caught:
            await run_migrations(fresh, ini)
    assert await versions(fresh) == ["r1"]
    assert any("Running upgrade" in record.getMessage() for record in caplog.records)
    written = "".join(path.read_text() for path in ini.parent.rglob("*") if path.is_file())
    logged = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    for secret in _secrets():
        assert secret not in written
        assert secret not in logged
        assert secret not in str(caught.value)


# --- the environment written by `fkit migrations init` -----------------------------------


def test_init_writes_an_environment_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "db"
    first = subprocess.run(
        [sys.executable, "-m", "fkit_core.cli", "migrations", "init", str(target)],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    ini = target / "alembic.ini"
    env_py = target / "migrations" / "env.py"
    assert (target / "migrations" / "script.py.mako").is_file()
    assert (target / "migrations" / "versions").is_dir()
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read(ini)
    assert parsed["alembic"]["script_location"] == "%(here)s/migrations"
    assert "sqlalchemy.url" not in parsed["alembic"]
    env_text = env_py.read_text()
    assert 'config.attributes.get("fkit_url")' in env_text
    assert "NullPool" in env_text
    assert "target_metadata: MetaData | None = None" in env_text
    env_py.write_text("# mine\n")
    assert fkit_main(["migrations", "init", str(target)]) == 1
    stderr = capsys.readouterr().err
    assert "not overwriting" in stderr
    assert str(env_py) in stderr
    assert env_py.read_text() == "# mine\n"


def test_init_refuses_when_any_one_file_exists(tmp_path: Path) -> None:
    target = tmp_path / "db"
    target.mkdir()
    (target / "alembic.ini").write_text("[alembic]\n")
    assert fkit_main(["migrations", "init", str(target)]) == 1
    assert (target / "alembic.ini").read_text() == "[alembic]\n"
    assert not (target / "migrations").exists()


@pytest.mark.asyncio
async def test_alembic_from_the_shell_reads_fkit_db_url(
    fresh: AsyncSessionManager, fresh_url: str, ini: Path
) -> None:
    write_revision(ini, "r1", None, create_table("things"))
    alembic = str(Path(sys.executable).with_name("alembic"))
    offline = await asyncio.to_thread(
        _shell, alembic, "-c", str(ini), "upgrade", "head", "--sql", url=fresh_url, cwd=ini.parent
    )
    assert offline.returncode == 0, offline.stderr
    assert "CREATE TABLE things" in offline.stdout
    assert "things" not in await tables(fresh)  # offline mode only printed the SQL
    online = await asyncio.to_thread(
        _shell, alembic, "upgrade", "head", url=fresh_url, cwd=ini.parent
    )
    assert online.returncode == 0, online.stderr
    assert "Running upgrade  -> r1" in online.stderr
    assert await versions(fresh) == ["r1"]
    for result in (offline, online):
        for secret in _secrets():
            assert secret not in result.stdout + result.stderr


# The command line is the same for both drivers; env.py's drivers are covered above.
@pytest.mark.parametrize("driver", ["asyncpg"])
@pytest.mark.asyncio
async def test_fkit_migrations_upgrade_and_downgrade_commands(
    fresh: AsyncSessionManager, fresh_url: str, ini: Path
) -> None:
    write_revision(ini, "r1", None, create_table("things"))
    fkit = [sys.executable, "-m", "fkit_core.cli", "migrations"]
    up = await asyncio.to_thread(
        _shell, *fkit, "upgrade", "--ini", str(ini), url=fresh_url, cwd=ini.parent
    )
    assert up.returncode == 0, up.stderr
    assert "Running upgrade  -> r1" in up.stderr
    assert await versions(fresh) == ["r1"]
    down = await asyncio.to_thread(
        _shell,
        *fkit,
        "downgrade",
        "--revision",
        "base",
        "--url",
        fresh_url,
        url="postgresql://nobody@127.0.0.1:1/nowhere",  # --url wins over the environment
        cwd=ini.parent,  # --ini defaults to ./alembic.ini
    )
    assert down.returncode == 0, down.stderr
    assert await versions(fresh) == []
    failed = await asyncio.to_thread(
        _shell, *fkit, "upgrade", "--revision", "nope", url=fresh_url, cwd=ini.parent
    )
    assert failed.returncode == 1
    assert "error: alembic upgrade to 'nope' failed" in failed.stderr
    for result in (up, down, failed):
        for secret in _secrets():
            assert secret not in result.stdout + result.stderr


# --- optional dependency and import cost -------------------------------------------------


def test_importing_fkit_core_does_not_import_alembic() -> None:
    code = (
        "import sys\n"
        "import fkit_core, fkit_core.settings, fkit_core.cli\n"
        "from fkit_core import run_migrations, MigrationSettings\n"
        "fkit_core.cli._parser()\n"
        "assert 'alembic' not in sys.modules, 'alembic imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=GUARD)


@pytest.mark.asyncio
async def test_without_alembic_a_missing_dependency_error_names_the_extra(
    ini: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import alembic` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "alembic", None)
    manager = AsyncSessionManager("postgresql+asyncpg://u@127.0.0.1:1/db", plugins=[])
    with pytest.raises(MissingDependencyError) as caught:
        await run_migrations(manager, ini)
    assert caught.value.distribution == "fkit-core[alembic]"
    assert "pip install fkit-core[alembic]" in str(caught.value)


# --- settings ----------------------------------------------------------------------------


def test_migration_settings_default_to_off() -> None:
    assert BasePostgresConfig().migrations == MigrationSettings()
    assert MigrationSettings().run_on_start is False
    assert MigrationSettings().alembic_ini is None
    assert MigrationSettings().revision == "head"


def test_run_on_start_needs_alembic_ini(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FKIT_DB_MIGRATIONS__RUN_ON_START", "true")
    with pytest.raises(ConfigurationError, match=r"migrations\.alembic_ini: is required"):
        BasePostgresConfig()
    with pytest.raises(ConfigurationError, match="alembic_ini: is required"):
        MigrationSettings(run_on_start=True)
    monkeypatch.setenv("FKIT_DB_MIGRATIONS__ALEMBIC_INI", "/srv/app/alembic.ini")
    monkeypatch.setenv("FKIT_DB_MIGRATIONS__REVISION", "ae1027a6acf")
    assert BasePostgresConfig().migrations == MigrationSettings(
        run_on_start=True, alembic_ini="/srv/app/alembic.ini", revision="ae1027a6acf"
    )


def test_migration_settings_reject_empty_values() -> None:
    with pytest.raises(ConfigurationError, match="revision"):
        MigrationSettings(revision="")
    with pytest.raises(ConfigurationError, match="alembic_ini"):
        MigrationSettings(alembic_ini="")


@pytest.mark.asyncio
async def test_run_on_start_migrates_during_start(fresh_url: str, ini: Path) -> None:
    write_revision(ini, "r1", None, create_table("things"))
    config = BasePostgresConfig(
        url=fresh_url, migrations=MigrationSettings(run_on_start=True, alembic_ini=str(ini))
    )
    async with (
        asyncio.timeout(GUARD),
        AsyncSessionManager(config, plugins=[], autoload=False) as manager,
    ):
        assert await versions(manager) == ["r1"]
        assert "things" in await tables(manager)


@pytest.mark.asyncio
async def test_run_on_start_refuses_to_start_implicitly(fresh_url: str, ini: Path) -> None:
    from fkit_core.errors import ManagerNotStartedError

    config = BasePostgresConfig(
        url=fresh_url, migrations=MigrationSettings(run_on_start=True, alembic_ini=str(ini))
    )
    manager = AsyncSessionManager(config, plugins=[], autoload=False)
    with pytest.raises(ManagerNotStartedError, match=r"await manager\.start"):
        manager.get_transaction()


@pytest.mark.asyncio
async def test_a_failing_migration_on_start_fails_the_start(fresh_url: str, ini: Path) -> None:
    write_revision(ini, "r1", None, "op.execute('CREATE TABLE broken (')")
    config = BasePostgresConfig(
        url=fresh_url, migrations=MigrationSettings(run_on_start=True, alembic_ini=str(ini))
    )
    manager = AsyncSessionManager(config, plugins=[], autoload=False)
    with pytest.raises(MigrationError):
        await manager.start()
    assert manager.state == "new"
