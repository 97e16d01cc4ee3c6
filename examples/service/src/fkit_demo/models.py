"""The demo's tables: users, their orders, and accounts that money moves between.

They use fkit-types the way an application does: a declarative base with named
constraints, UUIDv7 keys made in Python, server timestamps, an enum stored as plain text
(a new status needs no migration) and a JSONB column holding a pydantic model.
"""

# No `from __future__ import annotations`: SQLAlchemy reads the `Mapped[...]` annotations
# at runtime, so the names in them must be real imports.
import enum
import uuid
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, MetaData, String
from sqlalchemy.orm import Mapped, mapped_column

from fkit_types import (
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    PydanticJSONB,
    TimestampMixin,
    UnConstrainedEnum,
    UUIDPrimaryKeyMixin,
)

__all__ = [
    "Account",
    "DemoBase",
    "LineItem",
    "Order",
    "OrderDetails",
    "OrderStatus",
    "User",
    "metadata",
]


class DemoBase(BaseTable):
    """The demo's own base: its own ``MetaData``, so ``create_all`` creates only its tables."""

    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


metadata = DemoBase.metadata


class OrderStatus(enum.StrEnum):
    """Where an order is; stored as text, so adding a status is not a migration."""

    PENDING = "pending"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class LineItem(BaseModel):
    """One line of an order."""

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1000)
    unit_cents: int = Field(ge=0)


class OrderDetails(BaseModel):
    """What was ordered: validated by pydantic on the way in and out of the JSONB column."""

    items: list[LineItem] = Field(min_length=1, max_length=50)
    note: str | None = Field(default=None, max_length=500)

    @property
    def total_cents(self) -> int:
        """The order's total."""
        return sum(item.quantity * item.unit_cents for item in self.items)


class User(UUIDPrimaryKeyMixin, TimestampMixin, DemoBase):
    """A customer: UUIDv7 ``id``, ``created_at`` / ``updated_at`` from the server."""

    __tablename__ = "demo_users"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class Order(UUIDPrimaryKeyMixin, TimestampMixin, DemoBase):
    """An order of a user; settled by the background job."""

    __tablename__ = "demo_orders"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(User.id), index=True)
    status: Mapped[OrderStatus] = mapped_column(
        UnConstrainedEnum(OrderStatus), default=OrderStatus.PENDING, index=True
    )
    details: Mapped[OrderDetails] = mapped_column(PydanticJSONB(OrderDetails))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    settled_at: Mapped[datetime | None]


class Account(IdentityPrimaryKeyMixin, TimestampMixin, DemoBase):
    """A balance that transfers move money between; it never goes below zero."""

    __tablename__ = "demo_accounts"
    __table_args__ = (CheckConstraint("balance_cents >= 0", name="balance_not_negative"),)

    owner: Mapped[str] = mapped_column(String(200))
    balance_cents: Mapped[int] = mapped_column(BigInteger)
