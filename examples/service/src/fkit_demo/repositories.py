"""Repositories: the only place that knows how the demo's rows are queried."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from fkit_demo.models import Account, Order, OrderDetails, OrderStatus, User

if TYPE_CHECKING:
    import uuid
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["AccountRepository", "OrderRepository", "UserRepository"]


class UserRepository:
    """Users of one transaction's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, email: str, name: str) -> User:
        """Insert a user; a taken email raises fkit's ``UniqueViolationError``."""
        user = User(email=email, name=name)
        self.session.add(user)
        await self.session.flush()
        return user

    async def get(self, user_id: uuid.UUID) -> User | None:
        """The user with this id, or None."""
        return await self.session.get(User, user_id)


class OrderRepository:
    """Orders of one transaction's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user_id: uuid.UUID, details: OrderDetails) -> Order:
        """Insert a pending order; an unknown user raises ``ForeignKeyViolationError``."""
        order = Order(user_id=user_id, details=details, total_cents=details.total_cents)
        self.session.add(order)
        await self.session.flush()
        return order

    async def for_user(self, user_id: uuid.UUID) -> Sequence[Order]:
        """A user's orders, oldest first (UUIDv7 keys sort by creation time)."""
        query = select(Order).where(Order.user_id == user_id).order_by(Order.id)
        return (await self.session.scalars(query)).all()

    async def settle_pending(self) -> int:
        """Mark every pending order settled; returns how many. Settled orders stay as they are."""
        statement = (
            update(Order)
            .where(Order.status == OrderStatus.PENDING)
            .values(status=OrderStatus.SETTLED, settled_at=datetime.now(UTC))
            .returning(Order.id)
        )
        return len((await self.session.scalars(statement)).all())


class AccountRepository:
    """Accounts of one transaction's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open(self, owner: str, balance_cents: int) -> Account:
        """Open an account with an initial balance."""
        account = Account(owner=owner, balance_cents=balance_cents)
        self.session.add(account)
        await self.session.flush()
        return account

    async def get(self, account_id: int) -> Account | None:
        """The account with this id, or None."""
        return await self.session.get(Account, account_id)

    async def get_many(self, account_ids: Sequence[int]) -> dict[int, Account]:
        """The accounts with these ids that exist, by id.

        One primary-key lookup each, not ``id IN (...)``: on a small table PostgreSQL
        reads ``IN`` with a sequential scan, and under SERIALIZABLE a sequential scan
        takes a predicate lock on the whole table, so *every* pair of concurrent
        transfers would conflict. Index lookups lock only the rows read, so only
        transfers that share an account conflict.
        """
        found: dict[int, Account] = {}
        for account_id in sorted(set(account_ids)):
            account = await self.session.get(Account, account_id)
            if account is not None:
                found[account_id] = account
        return found
