"""The public generics type-check in user code (mypy --strict on a user-style module)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from mypy import api

if TYPE_CHECKING:
    from pathlib import Path

USER_CODE = textwrap.dedent(
    """
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from fkit_core import (
        AsyncSessionManager,
        AsyncSQLAlchemyUnitOfWork,
        AsyncSQLAlchemyUowTransaction,
        RetryConfig,
        retry_async_connection,
    )


    class Users:
        def __init__(self, session: AsyncSession) -> None:
            self.session = session


    class MyTransaction(AsyncSQLAlchemyUowTransaction):
        @property
        def users(self) -> Users:
            return Users(self.session)


    class MyUnitOfWork(AsyncSQLAlchemyUnitOfWork[MyTransaction]):
        def __init__(self, session_maker: async_sessionmaker[AsyncSession]) -> None:
            super().__init__(session_maker, transaction_factory=MyTransaction, flush_before_commit=True)


    @retry_async_connection(config=RetryConfig(max_attempts=2))
    async def count(session: AsyncSession, table: str) -> int:
        return 0


    async def use(manager: AsyncSessionManager) -> None:
        uow = MyUnitOfWork(manager.session_maker)
        async with uow.transaction() as tx:
            reveal_type(tx)
            reveal_type(tx.users)
        async with uow.managed_session() as (mtx, session):
            reveal_type(mtx)
            reveal_type(session)
        plain = AsyncSQLAlchemyUnitOfWork(manager)
        async with plain.query() as qx:
            reveal_type(qx)
        inferred = AsyncSQLAlchemyUnitOfWork(manager, transaction_factory=MyTransaction)
        async with inferred.transaction() as itx:
            reveal_type(itx)

        async def body(tx: MyTransaction) -> int:
            return 1

        result = await uow.run(body)
        reveal_type(result)
        async with manager.get_transaction() as s:
            reveal_type(s)
            reveal_type(await count(s, "t"))
    """
)


def test_user_code_type_checks_strictly_with_the_right_types(tmp_path: Path) -> None:
    source = tmp_path / "user_module.py"
    source.write_text(USER_CODE)
    stdout, stderr, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy_cache"), str(source)]
    )
    revealed = [
        line.split("Revealed type is ", 1)[1].strip('"')
        for line in stdout.splitlines()
        if "Revealed type" in line
    ]
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert errors == [], stdout + stderr
    assert revealed == [
        "user_module.MyTransaction",
        "user_module.Users",
        "user_module.MyTransaction",
        "sqlalchemy.ext.asyncio.session.AsyncSession",
        "fkit_core._uow.AsyncSQLAlchemyUowTransaction",
        "user_module.MyTransaction",
        "int",
        "sqlalchemy.ext.asyncio.session.AsyncSession",
        "int",
    ], stdout
    assert status == 0, stdout
