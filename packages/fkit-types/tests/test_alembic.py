"""Alembic autogenerate against models using every fkit type: a clean migration, then no diff."""

from __future__ import annotations

import enum
import textwrap

# SQLAlchemy evaluates the Mapped[...] annotations at runtime: these imports must be real.
import uuid  # noqa: TC003
from datetime import datetime  # noqa: TC003
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
from alembic.migration import MigrationContext
from alembic.operations import Operations
from pydantic import BaseModel
from sqlalchemy import CheckConstraint, ForeignKey, MetaData, String, UniqueConstraint
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from fkit_types import (
    NAMING_CONVENTION,
    BaseTable,
    IdentityPrimaryKeyMixin,
    PydanticJSONB,
    SoftDeleteMixin,
    TimestampMixin,
    UnConstrainedEnum,
    UTCDateTime,
    UUIDPrimaryKeyMixin,
    VersionedMixin,
    alembic_render_item,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from fkit_core import AsyncSessionManager


class Plan(enum.StrEnum):
    FREE = "free"
    PRO = "pro"


class Settings(BaseModel):
    theme: str


class Line(BaseModel):
    sku: str


class Base(BaseTable):
    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(IdentityPrimaryKeyMixin, TimestampMixin, Base):
    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(40), unique=True)


class Customer(UUIDPrimaryKeyMixin, TimestampMixin, SoftDeleteMixin, VersionedMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        CheckConstraint("length(email) > 3", name="email_length"),
    )

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(String(200))
    plan: Mapped[Plan] = mapped_column(UnConstrainedEnum(Plan, fallback=Plan.FREE))
    settings: Mapped[Settings] = mapped_column(PydanticJSONB(Settings, mutable=True))
    lines: Mapped[list[Line]] = mapped_column(PydanticJSONB(list[Line]))
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    trial_ends_at: Mapped[datetime | None]
    external_id: Mapped[uuid.UUID | None]


def _context(connection: Connection) -> MigrationContext:
    return MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "compare_server_default": True,
            "render_item": alembic_render_item,
        },
    )


def _diff(connection: Connection) -> list[Any]:
    return list(compare_metadata(_context(connection), Base.metadata))


def _migrate(connection: Connection) -> str:
    context = _context(connection)
    script = produce_migrations(context, Base.metadata)
    assert script.upgrade_ops is not None
    code = render_python_code(
        script.upgrade_ops, render_item=alembic_render_item, migration_context=context
    )
    body = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("#"))
    # Run the migration exactly as written, as an env.py would.
    namespace = {"op": Operations(context), "sa": sa, "postgresql": postgresql}
    exec(textwrap.dedent(body), namespace)  # noqa: S102 - the code Alembic just rendered
    return code


@pytest.mark.asyncio
async def test_autogenerate_writes_a_clean_migration(manager: AsyncSessionManager) -> None:
    async with manager.engine.begin() as conn:
        code = await conn.run_sync(_migrate)
        # The migration names database types, never the application's models.
        assert "fkit_types" not in code
        assert "Settings" not in code
        assert "Plan" not in code
        assert "postgresql.JSONB(astext_type=sa.Text())" in code
        assert "sa.Column('plan', sa.Text(), nullable=False)" in code
        assert "sa.Column('renewed_at', sa.DateTime(timezone=True), nullable=True)" in code
        assert "sa.Column('trial_ends_at', sa.DateTime(timezone=True), nullable=True)" in code
        assert "server_default=sa.text('now()')" in code
        assert "op.f('pk_customers')" in code
        assert "op.f('uq_customers_tenant_id_email')" in code
        assert "op.f('fk_customers_tenant_id_tenants')" in code
        assert "op.f('ix_customers_tenant_id')" in code
        # Running it creates exactly what the models describe: a second run finds nothing.
        assert await conn.run_sync(_diff) == []


@pytest.mark.asyncio
async def test_create_all_leaves_nothing_for_autogenerate(manager: AsyncSessionManager) -> None:
    async with manager.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        assert await conn.run_sync(_diff) == []


def test_render_item_leaves_other_types_to_alembic() -> None:
    class Context:
        imports: set[str] = set()  # noqa: RUF012

    assert alembic_render_item("type", sa.Integer(), Context()) is False
    assert alembic_render_item("column", PydanticJSONB(Settings), Context()) is False
    assert alembic_render_item("type", UTCDateTime(), Context()) == "sa.DateTime(timezone=True)"
