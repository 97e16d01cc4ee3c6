"""ORM models for fkit-core's tests; table names are unique per test process (xdist-safe)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fkit_core import AsyncSQLAlchemyUnitOfWork, AsyncSQLAlchemyUowTransaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

SUFFIX = uuid.uuid4().hex[:8]


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = f"acct_{SUFFIX}"
    __table_args__ = (CheckConstraint("balance >= 0", name=f"acct_{SUFFIX}_balance_nonneg"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(50))
    balance: Mapped[int] = mapped_column(Integer)


class Note(Base):
    __tablename__ = f"note_{SUFFIX}"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey(Account.id), nullable=True)
    body: Mapped[str] = mapped_column(String(200), unique=True)


class Accounts:
    """A repository, as users write them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, id: int, owner: str, balance: int) -> Account:
        account = Account(id=id, owner=owner, balance=balance)
        self.session.add(account)
        await self.session.flush()
        return account

    async def get(self, id: int) -> Account | None:
        return await self.session.get(Account, id)

    async def total(self) -> int:
        rows = await self.session.execute(select(Account.balance))
        return sum(rows.scalars())


class BankTransaction(AsyncSQLAlchemyUowTransaction):
    """The seed's pattern: repositories as lazy properties."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._accounts: Accounts | None = None

    @property
    def accounts(self) -> Accounts:
        if self._accounts is None:
            self._accounts = Accounts(self.session)
        return self._accounts


class BankUnitOfWork(AsyncSQLAlchemyUnitOfWork[BankTransaction]):
    def __init__(self, session_maker: object) -> None:
        super().__init__(
            session_maker,  # type: ignore[arg-type]
            transaction_factory=BankTransaction,
            flush_before_commit=True,
        )
