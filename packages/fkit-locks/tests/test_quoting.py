"""Property tests of identifier quoting, checked by the server itself.

For arbitrary table and schema names, the names ``lock_tables`` renders are read back
by PostgreSQL exactly as given; a name that is no table is a missing table (never a
syntax error, never another table); and a real table with such a name is the one that
gets locked. Each test runs its own event loop so hypothesis can drive many examples
over one engine.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, Table, table, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from fkit_locks import LockMode, TableNotFoundError, lock_tables
from fkit_locks._tables import render_table

# Any character PostgreSQL allows in a quoted identifier (all but NUL), within its
# 63-byte limit; dots and quotes included on purpose.
IDENTIFIER = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1,
    max_size=16,
).filter(lambda s: len(s.encode()) <= 63)
AWKWARD = st.one_of(
    IDENTIFIER,
    st.sampled_from(
        [
            *("order", "select", "user", "MixedCase", "a.b", 'x"y', "é", " ", "; DROP TABLE t; --"),
            # what drivers and SQLAlchemy's text() would read as parameters
            *("%", "%s", "%(x)s", ":x", " :x", "a::b", "$1", "?", "\\"),
        ]
    ),
)
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_rendered_names_are_read_back_by_the_server_exactly(db_url: str) -> None:
    with asyncio.Runner() as runner:
        engine = create_async_engine(db_url)
        connection = runner.run(engine.connect().start())
        try:

            @EXAMPLES
            @given(schema=st.none() | AWKWARD, name=AWKWARD)
            def check(schema: str | None, name: str) -> None:
                (rendered,) = render_table(table(name, schema=schema))
                parsed = runner.run(
                    connection.scalar(text("SELECT parse_ident(:r)"), {"r": rendered})
                )
                assert list(parsed) == ([] if schema is None else [schema]) + [name]

            check()
        finally:
            runner.run(connection.close())
            runner.run(engine.dispose())


def test_a_name_that_is_no_table_is_always_a_missing_table(db_url: str) -> None:
    with asyncio.Runner() as runner:
        engine = create_async_engine(db_url, pool_size=1)
        maker = async_sessionmaker(engine)

        async def attempt(schema: str | None, name: str) -> None:
            async with maker() as session, session.begin():
                # The server's own quoting (format %I), independent of the code under test.
                exists = await session.scalar(
                    text(
                        "SELECT to_regclass(CASE WHEN CAST(:s AS text) IS NULL "
                        "THEN format('%I', CAST(:n AS text)) "
                        "ELSE format('%I.%I', CAST(:s AS text), CAST(:n AS text)) END)"
                    ),
                    {"s": schema, "n": name},
                )
                assume(exists is None)
                with pytest.raises(TableNotFoundError) as caught:
                    async with lock_tables(session, table(name, schema=schema), "share"):
                        pass
                assert caught.value.sqlstate in ("42P01", "3F000")

        try:

            @EXAMPLES
            @given(schema=st.none() | AWKWARD, name=AWKWARD)
            def check(schema: str | None, name: str) -> None:
                runner.run(attempt(schema, name))

            check()
        finally:
            runner.run(engine.dispose())


def test_a_real_table_with_any_name_is_the_one_locked(db_url: str) -> None:
    # This test found "%" in a name breaking under psycopg (its parameter style doubles
    # it, and text() doubled it again); " :x" would have been read as a parameter by
    # text() too. LOCK TABLE is now a statement compiled by the session's dialect.
    scratch = f"fkit_locks_q_{secrets.token_hex(4)}"
    with asyncio.Runner() as runner:
        engine = create_async_engine(db_url, pool_size=1)
        maker = async_sessionmaker(engine)

        async def run_sql(sql: str) -> None:
            async with engine.begin() as conn:
                await conn.execute(text(sql))

        async def attempt(name: str) -> None:
            async with maker() as session, session.begin():
                connection = await session.connection()
                await connection.run_sync(
                    lambda c: Table(name, MetaData(), schema=scratch).create(c)
                )
                target = table(name, schema=scratch) if "." in name else f"{scratch}.{name}"
                async with lock_tables(session, target, LockMode.SHARE):
                    pass
                modes = await session.scalars(
                    text(
                        "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND granted "
                        "AND relation = to_regclass(format('%I.%I', CAST(:s AS text), CAST(:n AS text)))"
                    ),
                    {"s": scratch, "n": name},
                )
                assert "ShareLock" in set(modes)
                await session.rollback()

        runner.run(run_sql(f'CREATE SCHEMA "{scratch}"'))
        try:

            @EXAMPLES
            @given(name=AWKWARD)
            def check(name: str) -> None:
                runner.run(attempt(name))

            check()
        finally:
            runner.run(run_sql(f'DROP SCHEMA "{scratch}" CASCADE'))
            runner.run(engine.dispose())


def test_a_trailing_newline_is_quoted_not_dropped() -> None:
    # SQLAlchemy's "needs quoting" check lets "_\n" through unquoted (its regex `$`
    # matches before a final newline), which would lock table "_" instead.
    from fkit_locks._tables import render_table

    assert render_table("_\n") == ['"_\n"']
    assert render_table("audit\n") == ['"audit\n"']
    assert render_table("users") == ["users"]
    assert render_table("order") == ['"order"']
