"""The demo's Unit of Work: a transaction class with lazy repositories and advisory locks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fkit_core import AsyncSQLAlchemyUnitOfWork, AsyncSQLAlchemyUowTransaction, RetryConfig
from fkit_demo.repositories import AccountRepository, OrderRepository, UserRepository
from fkit_locks import PostgresAdvisoryLockMixin

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from fkit_core import AsyncSessionManager

__all__ = ["CONFLICT_RETRY", "DemoTransaction", "DemoUnitOfWork"]

# Re-running a whole SERIALIZABLE transaction is cheap here, and under the workload's
# deliberate contention a handful of clients fail together: short, jittered delays and
# enough attempts that each of them gets through.
CONFLICT_RETRY = RetryConfig(
    max_attempts=30, initial_delay=0.01, max_delay=0.2, exponential_base=2.0, jitter=True
)


class DemoTransaction(AsyncSQLAlchemyUowTransaction, PostgresAdvisoryLockMixin):
    """One transaction: repositories over its session, and locks that end with it."""

    lock_namespace = "fkit-demo"  # keeps the demo's lock keys apart from other applications'

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self._users: UserRepository | None = None
        self._orders: OrderRepository | None = None
        self._accounts: AccountRepository | None = None

    @property
    def users(self) -> UserRepository:
        """Lazy-loaded user repository."""
        if self._users is None:
            self._users = UserRepository(self.session)
        return self._users

    @property
    def orders(self) -> OrderRepository:
        """Lazy-loaded order repository."""
        if self._orders is None:
            self._orders = OrderRepository(self.session)
        return self._orders

    @property
    def accounts(self) -> AccountRepository:
        """Lazy-loaded account repository."""
        if self._accounts is None:
            self._accounts = AccountRepository(self.session)
        return self._accounts


class DemoUnitOfWork(AsyncSQLAlchemyUnitOfWork[DemoTransaction]):
    """The Unit of Work the endpoints use; dishka builds it from the session manager."""

    def __init__(
        self, session_maker: async_sessionmaker[AsyncSession] | AsyncSessionManager
    ) -> None:
        super().__init__(
            session_maker,
            transaction_factory=DemoTransaction,
            flush_before_commit=True,
            retry=CONFLICT_RETRY,
        )
