"""What the endpoints take and return (pydantic models, validated by FastAPI)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from fkit_demo.models import OrderDetails, OrderStatus

__all__ = [
    "AccountIn",
    "AccountOut",
    "HealthOut",
    "OrderOut",
    "SettleOut",
    "TransferIn",
    "TransferOut",
    "UserIn",
    "UserOut",
    "UserWithOrdersOut",
]

# Simulated work inside a transaction, capped: the workload uses it to widen the window
# in which concurrent requests overlap, so that conflicts and lock contention are real.
MAX_THINK_MS = 1000


class UserIn(BaseModel):
    """A new user."""

    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1, max_length=200)


class UserOut(BaseModel):
    """A user."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    created_at: datetime


class OrderOut(BaseModel):
    """An order."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    status: OrderStatus
    details: OrderDetails
    total_cents: int
    created_at: datetime
    settled_at: datetime | None


class UserWithOrdersOut(UserOut):
    """A user and their orders."""

    orders: list[OrderOut]


class AccountIn(BaseModel):
    """A new account."""

    owner: str = Field(min_length=1, max_length=200)
    balance_cents: int = Field(ge=0)


class AccountOut(BaseModel):
    """An account."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    owner: str
    balance_cents: int


class TransferIn(BaseModel):
    """Money to move from one account to another."""

    from_account: int
    to_account: int
    amount_cents: int = Field(gt=0)
    think_ms: int = Field(default=0, ge=0, le=MAX_THINK_MS)


class TransferOut(BaseModel):
    """A committed transfer, and how many attempts it took."""

    from_account: int
    to_account: int
    amount_cents: int
    attempts: int


class SettleOut(BaseModel):
    """What one run of the settle job did."""

    skipped: bool
    settled: int


class HealthOut(BaseModel):
    """The database health check."""

    healthy: bool
    engine: str
    latency_ms: float
    error: str | None = None
