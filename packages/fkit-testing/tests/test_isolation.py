"""Rollback-per-test isolation and the per-worker database, as a user's suite sees them.

Each test here runs a small user suite with pytester in a subprocess, against this
session's server (its ``FKIT_TEST_DATABASE_URL`` is our ``fkit_database_url``), then
checks from outside what the suite recorded and what it left on the server.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytest_plugins = ["pytester"]

HANG_GUARD = 180.0
INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
filterwarnings = error
pythonpath = .
{extra}
"""

MODELS = """
from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(100))
"""

# Records what a test saw, one JSON object per line, for the outer test to check.
RECORD = """
import json


def record(**facts):
    with open("seen.jsonl", "a") as seen:
        seen.write(json.dumps(facts) + "\\n")
"""

ISOLATION_SUITE = """
import asyncpg
import pytest
from sqlalchemy import func, select, text

from fkit_core import AsyncSQLAlchemyUowTransaction, create_db_context, get_transaction
from fkit_core.errors import ReadOnlyTransactionError
from models import Note
from record import record

COUNT = select(func.count()).select_from(Note)
LOCK_KEY = 424242


async def count_elsewhere(url):
    # A connection of its own, outside fkit_manager: it sees only what was really committed.
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("select count(*) from notes")
    finally:
        await conn.close()


async def try_lock_elsewhere(url):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("select pg_try_advisory_lock($1)", LOCK_KEY)
    finally:
        await conn.close()


class Tx(AsyncSQLAlchemyUowTransaction):
    pass


@pytest.mark.asyncio
async def test_1_the_app_commits_every_way(fkit_manager, fkit_session, fkit_uow, fkit_worker_database):
    async with fkit_manager.get_transaction() as session:
        session.add(Note(body="get_transaction"))
    uow = fkit_uow()
    async with uow.transaction() as tx:
        tx.session.add(Note(body="uow"))
    async with fkit_manager.get_session() as session:
        async with get_transaction(session):
            session.add(Note(body="get_transaction(session)"))
    async with create_db_context(fkit_manager)() as session:  # a background job's transaction
        session.add(Note(body="db_context"))
    async with fkit_manager.get_session() as session:
        session.add(Note(body="plain commit"))
        await session.commit()
    fkit_session.add(Note(body="fixture session"))
    await fkit_session.commit()
    async with fkit_manager.get_transaction() as session:
        assert await session.scalar(text("select pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    async with fkit_manager.get_transaction() as session:
        seen = await session.scalar(COUNT)
        database = await session.scalar(text("select current_database()"))
    elsewhere = await count_elsewhere(fkit_worker_database.url)
    lock_elsewhere = await try_lock_elsewhere(fkit_worker_database.url)
    record(test=1, seen=seen, elsewhere=elsewhere, lock_elsewhere=lock_elsewhere,
           database=database, template=fkit_worker_database.template)


@pytest.mark.asyncio
async def test_2_the_next_test_starts_clean(fkit_session, fkit_worker_database):
    record(test=2, seen=await fkit_session.scalar(COUNT),
           lock_elsewhere=await try_lock_elsewhere(fkit_worker_database.url))


@pytest.mark.asyncio
async def test_3_reads_are_read_only(fkit_uow, fkit_manager):
    uow = fkit_uow(__import__("fkit_core").AsyncSQLAlchemyUnitOfWork, Tx)
    async with uow.query() as qx:
        assert isinstance(qx, Tx)
        assert await qx.session.scalar(text("show transaction_read_only")) == "on"
    with pytest.raises(ReadOnlyTransactionError):
        async with fkit_manager.get_transaction(readonly=True) as session:
            session.add(Note(body="refused"))
    async with fkit_manager.get_transaction("SERIALIZABLE") as session:
        session.add(Note(body="still writable"))
    async with fkit_manager.get_session() as session:
        record(test=3, seen=await session.scalar(COUNT))


@pytest.mark.asyncio
@pytest.mark.fkit_truncate
async def test_4_truncate_commits_for_real(fkit_manager, fkit_worker_database):
    async with fkit_manager.get_transaction() as session:
        session.add_all([Note(body="really"), Note(body="committed")])
    record(test=4, elsewhere=await count_elsewhere(fkit_worker_database.url))


@pytest.mark.asyncio
async def test_5_after_truncation(fkit_session, fkit_worker_database):
    record(test=5, seen=await fkit_session.scalar(COUNT),
           elsewhere=await count_elsewhere(fkit_worker_database.url),
           next_id=(await fkit_session.execute(text("insert into notes (body) values ('x') returning id"))).scalar_one())
"""


def run(
    pytester: pytest.Pytester, url: str, *args: str, extra_ini: str = "", driver: str = ""
) -> pytest.RunResult:
    pytester.makeini(INI.format(extra=extra_ini))
    pytester.makepyfile(models=MODELS, record=RECORD)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FKIT_TEST_DATABASE_URL", url)
        if driver:
            env.setenv("FKIT_TEST_DRIVER", driver)
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--strict-markers", *args, timeout=HANG_GUARD
        )


def seen(path: Path) -> list[dict[str, Any]]:
    lines = (path / "seen.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def databases(url: str, prefix: str = "fkit_") -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "select datname from pg_database where left(datname, length($1)) = $1", prefix
        )
    finally:
        await conn.close()
    return sorted(row["datname"] for row in rows)


def run_prefix(database: str) -> str:
    return database.rsplit("_", 1)[0] + "_"


def test_rollback_isolation_holds_for_everything_the_app_commits(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, fkit_database_url: str, driver: str
) -> None:
    pytester.makepyfile(test_isolation=ISOLATION_SUITE)
    result = run(pytester, fkit_database_url, extra_ini="fkit_schema = models:Base", driver=driver)
    result.assert_outcomes(passed=5)
    facts = {fact.pop("test"): fact for fact in seen(pytester.path)}
    # Test 1: six commits by six paths, all inside the test's transaction: none reached
    # the database, and the advisory xact lock is held by the test's connection.
    assert facts[1]["seen"] == 6
    assert facts[1]["elsewhere"] == 0
    assert facts[1]["lock_elsewhere"] is False
    assert facts[1]["database"].endswith("_main")
    # Test 2: nothing of test 1 is left, and its lock ended with its transaction.
    assert facts[2] == {"seen": 0, "lock_elsewhere": True}
    # Test 3: read-only blocks refuse writes; SERIALIZABLE joins the test's transaction.
    assert facts[3] == {"seen": 1}
    # Tests 4 and 5: truncate mode commits for real, then empties the tables.
    assert facts[4] == {"elsewhere": 2}
    assert facts[5] == {"seen": 0, "elsewhere": 0, "next_id": 1}
    # The worker database and the template are gone.
    prefix = run_prefix(facts[1]["database"])
    assert facts[1]["template"] == prefix + "tpl"
    assert asyncio.run(databases(fkit_database_url, prefix)) == []


XDIST_SUITE = """
import os
import time

import pytest
from sqlalchemy import func, select, text

from models import Note
from record import record

HANG_GUARD = 120


def barrier(name, parties=2):
    # Each worker says it got here and waits for the others: both hold data at once.
    open(f"{name}.{os.environ['PYTEST_XDIST_WORKER']}", "w").close()
    deadline = time.monotonic() + HANG_GUARD
    while len([f for f in os.listdir(".") if f.startswith(name + ".")]) < parties:
        assert time.monotonic() < deadline, "the other worker never came"
        time.sleep(0.02)


@pytest.mark.asyncio
@pytest.mark.fkit_truncate
async def test_workers_do_not_see_each_other(fkit_manager, fkit_worker_database, worker_id):
    async with fkit_manager.get_transaction() as session:
        session.add(Note(body=worker_id))
    barrier("committed")
    async with fkit_manager.get_transaction() as session:
        bodies = (await session.scalars(select(Note.body))).all()
        database = await session.scalar(text("select current_database()"))
    record(worker=worker_id, bodies=list(bodies), database=database,
           template=fkit_worker_database.template)
    barrier("read")
"""

SCHEMA_HOOK = """
import os

from models import Base


async def build(conn):
    # Appends one line per template build, from whichever worker builds it.
    with open("builds.txt", "a") as builds:
        builds.write(f"{os.getpid()}\\n")
    await conn.run_sync(Base.metadata.create_all)
"""


def test_a_database_per_xdist_worker_from_one_template(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, fkit_database_url: str
) -> None:
    pytester.makepyfile(test_workers=XDIST_SUITE, schema_hook=SCHEMA_HOOK)
    result = run(
        pytester,
        fkit_database_url,
        "-n",
        "2",
        "--dist",
        "each",
        extra_ini="fkit_schema = schema_hook:build",
    )
    result.assert_outcomes(passed=2)
    facts = sorted(seen(pytester.path), key=lambda f: f["worker"])
    assert [f["worker"] for f in facts] == ["gw0", "gw1"]
    for fact in facts:
        # Both workers had committed a row when each read: each saw only its own.
        assert fact["bodies"] == [fact["worker"]]
        assert fact["database"].endswith("_" + fact["worker"])
    assert facts[0]["template"] == facts[1]["template"]
    # The schema was built once, into the shared template, not once per worker.
    assert len((pytester.path / "builds.txt").read_text().split()) == 1
    assert asyncio.run(databases(fkit_database_url, run_prefix(facts[0]["database"]))) == []


ALEMBIC_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.String(100)))
    op.execute("insert into notes (body) values ('from a migration')")


def downgrade():
    op.drop_table("notes")
"""

MIGRATED_SUITE = """
import pytest
from sqlalchemy import text


@pytest.mark.asyncio
@pytest.mark.parametrize("attempt", [1, 2])
async def test_migrated_schema(fkit_session, attempt):
    bodies = (await fkit_session.scalars(text("select body from notes"))).all()
    assert bodies == ["from a migration"]
    assert await fkit_session.scalar(text("select version_num from alembic_version")) == "0001"
    await fkit_session.execute(text("delete from notes"))
    await fkit_session.commit()
"""


def test_alembic_schema_from_the_ini_option(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, fkit_database_url: str
) -> None:
    assert pytester.run(sys.executable, "-m", "fkit_core.cli", "migrations", "init", "db").ret == 0
    versions = pytester.path / "db" / "migrations" / "versions"
    versions.mkdir(exist_ok=True)
    (versions / "0001_notes.py").write_text(ALEMBIC_REVISION)
    pytester.makepyfile(test_migrated=MIGRATED_SUITE)
    result = run(pytester, fkit_database_url, extra_ini="fkit_alembic_ini = db/alembic.ini")
    result.assert_outcomes(passed=2)


OVERRIDE_SUITE = """
import pytest
from sqlalchemy import text


@pytest.fixture(scope="session")
def fkit_schema():
    async def seed(conn):
        await conn.execute(text("create table settings (name text primary key, value text)"))
        await conn.execute(text("insert into settings values ('greeting', 'hello')"))

    return seed


@pytest.mark.asyncio
async def test_the_fixture_override_built_the_schema(fkit_session):
    assert await fkit_session.scalar(text("select value from settings")) == "hello"
"""

FAILING_SCHEMA_SUITE = """
import pytest
from sqlalchemy import text


@pytest.fixture(scope="session")
def fkit_schema():
    def broken(conn):
        conn.execute(text("create table half_done (id int)"))
        conn.execute(text("select * from no_such_table"))

    return broken


def test_one(fkit_worker_database):
    pass


def test_two(fkit_worker_database):
    pass
"""


def test_schema_from_a_fixture_override_and_a_failing_schema(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, fkit_database_url: str
) -> None:
    pytester.makepyfile(test_override=OVERRIDE_SUITE)
    run(pytester, fkit_database_url).assert_outcomes(passed=1)
    (pytester.path / "test_override.py").unlink()
    pytester.makepyfile(test_failing=FAILING_SCHEMA_SUITE)
    result = run(pytester, fkit_database_url)
    # Every test that needs the database errors with the cause and what fkit was doing.
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*no_such_table*",
            "*fkit-testing: creating the test database fkit_*_main from the template*",
        ]
    )
    assert "skipped" not in result.stdout.str()
    # Nothing of the failed run is left. Only its own databases are checked: other
    # workers of this very session create and drop theirs on the same server meanwhile.
    failed = re.search(r"creating the test database (fkit_\w+)_main", result.stdout.str())
    assert failed is not None
    assert asyncio.run(databases(fkit_database_url, prefix=failed.group(1))) == []


@pytest.mark.parametrize(
    ("extra_ini", "message"),
    [
        ("fkit_schema = nope.models:Base", "*cannot import 'nope.models'*"),
        ("fkit_schema = models", "*expected 'package.module:attribute'*"),
        (
            "fkit_schema = models:Base\nfkit_alembic_ini = alembic.ini",
            "*set one of the ini options fkit_schema and fkit_alembic_ini*",
        ),
    ],
)
def test_bad_schema_settings_are_reported(
    pytester: pytest.Pytester,
    clean_env: pytest.MonkeyPatch,
    fkit_database_url: str,
    extra_ini: str,
    message: str,
) -> None:
    pytester.makepyfile(test_needs_db="def test_db(fkit_worker_database): pass")
    result = run(pytester, fkit_database_url, extra_ini=extra_ini)
    assert result.ret != 0
    result.stdout.fnmatch_lines([message])


TWO_SCHEMAS = {
    "a/conftest.py": """
import pytest
from sqlalchemy import text


@pytest.fixture(scope="session")
def fkit_schema():
    def build(conn):
        conn.execute(text("create table a_items (id int)"))

    return build
""",
    "b/conftest.py": """
import pytest
from sqlalchemy import text


@pytest.fixture(scope="session")
def fkit_schema():
    def build(conn):
        conn.execute(text("create table b_items (id int)"))

    return build
""",
}

TWO_SCHEMAS_TEST = """
import pytest
from sqlalchemy import text

from record import record


@pytest.mark.asyncio
async def test_sees_its_own_schema(fkit_session, fkit_worker_database):
    tables = (await fkit_session.scalars(text(
        "select tablename from pg_tables where schemaname = 'public'"
    ))).all()
    record(tables=list(tables), database=fkit_worker_database.name)
"""


def test_each_schema_of_a_suite_gets_its_own_database(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, fkit_database_url: str
) -> None:
    for path, code in TWO_SCHEMAS.items():
        (pytester.path / path).parent.mkdir(exist_ok=True)
        (pytester.path / path).write_text(code)
    for name in ("a", "b"):
        (pytester.path / name / f"test_{name}.py").write_text(TWO_SCHEMAS_TEST)
    run(pytester, fkit_database_url).assert_outcomes(passed=2)
    facts = seen(pytester.path)
    assert [f["tables"] for f in facts] == [["a_items"], ["b_items"]]
    assert facts[0]["database"] != facts[1]["database"]
    assert asyncio.run(databases(fkit_database_url, run_prefix(facts[0]["database"]))) == []
