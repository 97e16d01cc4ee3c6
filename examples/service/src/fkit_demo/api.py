"""The HTTP endpoints. Each takes what it needs from dishka with ``FromDishka[...]``.

No ``from __future__ import annotations`` here: FastAPI and dishka read the endpoints'
annotations at runtime.
"""

import uuid
from typing import Annotated

from dishka.integrations.fastapi import DishkaRoute, FromDishka
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse

from fkit_core import AsyncSessionManager
from fkit_core.errors import ForeignKeyViolationError, UniqueViolationError
from fkit_demo import services
from fkit_demo.models import OrderDetails
from fkit_demo.schemas import (
    MAX_THINK_MS,
    AccountIn,
    AccountOut,
    HealthOut,
    OrderOut,
    SettleOut,
    TransferIn,
    TransferOut,
    UserIn,
    UserOut,
    UserWithOrdersOut,
)
from fkit_demo.services import DemoMetrics
from fkit_demo.uow import DemoUnitOfWork

__all__ = ["router"]

# A literal: Starlette renamed the constant (UNPROCESSABLE_ENTITY -> _CONTENT) and warns on
# the old name, and the FastAPI floor of this example predates the new one.
UNPROCESSABLE = 422

# DishkaRoute injects FromDishka[...] parameters without an @inject on every endpoint.
router = APIRouter(route_class=DishkaRoute)


@router.post("/users", status_code=status.HTTP_201_CREATED)
async def create_user(body: UserIn, uow: FromDishka[DemoUnitOfWork]) -> UserOut:
    """Create a user; 409 when the email is taken."""
    try:
        async with uow.transaction() as tx:  # committed before the response is sent
            user = await tx.users.add(body.email, body.name)
            return UserOut.model_validate(user)
    except UniqueViolationError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{body.email} is taken") from exc


@router.get("/users/{user_id}")
async def read_user(user_id: uuid.UUID, uow: FromDishka[DemoUnitOfWork]) -> UserWithOrdersOut:
    """A user with their orders, read in one read-only transaction (one snapshot)."""
    found: UserWithOrdersOut | None = None
    async with uow.query(isolation_level="repeatable read") as qx:
        user = await qx.users.get(user_id)
        if user is not None:
            orders = await qx.orders.for_user(user_id)
            found = UserWithOrdersOut(
                **UserOut.model_validate(user).model_dump(),
                orders=[OrderOut.model_validate(order) for order in orders],
            )
    # Raised after the block: a missing row is an answer, not a failed transaction.
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id}")
    return found


@router.post("/users/{user_id}/orders", status_code=status.HTTP_201_CREATED)
async def create_order(
    user_id: uuid.UUID, body: OrderDetails, uow: FromDishka[DemoUnitOfWork]
) -> OrderOut:
    """Place a pending order; 404 when the user does not exist."""
    try:
        async with uow.transaction() as tx:
            order = await tx.orders.add(user_id, body)
            return OrderOut.model_validate(order)
    except ForeignKeyViolationError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id}") from exc


@router.post("/accounts", status_code=status.HTTP_201_CREATED)
async def open_account(body: AccountIn, uow: FromDishka[DemoUnitOfWork]) -> AccountOut:
    """Open an account with an initial balance."""
    async with uow.transaction() as tx:
        account = await tx.accounts.open(body.owner, body.balance_cents)
        return AccountOut.model_validate(account)


@router.get("/accounts/{account_id}")
async def read_account(account_id: int, uow: FromDishka[DemoUnitOfWork]) -> AccountOut:
    """An account and its balance."""
    async with uow.query() as qx:
        account = await qx.accounts.get(account_id)
        found = AccountOut.model_validate(account) if account is not None else None
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no account {account_id}")
    return found


@router.post("/transfers", response_model=TransferOut)
async def make_transfer(body: TransferIn, uow: FromDishka[DemoUnitOfWork]) -> JSONResponse:
    """Move money between accounts: SERIALIZABLE, re-run on conflicts.

    200 with the number of attempts it took; 404 for an unknown account, 422 when the
    source holds too little or the accounts are the same, 409 when conflicts outlasted
    the retry policy (the body says how many attempts were made in every case).
    """
    if body.from_account == body.to_account:
        return JSONResponse(
            {"detail": "from_account and to_account are the same", "attempts": 0},
            status_code=UNPROCESSABLE,
        )
    try:
        result = await services.transfer(
            uow, body.from_account, body.to_account, body.amount_cents, think=body.think_ms / 1000
        )
    except services.AccountNotFoundError as exc:
        return JSONResponse(
            {"detail": str(exc), "attempts": exc.attempts}, status_code=status.HTTP_404_NOT_FOUND
        )
    except services.TransferConflictError as exc:
        return JSONResponse(
            {"detail": str(exc), "attempts": exc.attempts}, status_code=status.HTTP_409_CONFLICT
        )
    except services.InsufficientFundsError as exc:
        return JSONResponse(
            {"detail": str(exc), "attempts": exc.attempts},
            status_code=UNPROCESSABLE,
        )
    out = TransferOut(
        from_account=body.from_account,
        to_account=body.to_account,
        amount_cents=body.amount_cents,
        attempts=result.attempts,
    )
    return JSONResponse(out.model_dump())


@router.post("/jobs/settle-orders")
async def run_settle_orders(
    uow: FromDishka[DemoUnitOfWork],
    metrics: FromDishka[DemoMetrics],
    think_ms: Annotated[int, Query(ge=0, le=MAX_THINK_MS)] = 0,
) -> SettleOut:
    """Run the settle job now; ``{"skipped": true}`` when another run holds its lock.

    ``think_ms`` keeps the lock (and the transaction) that much longer: simulated work.
    """
    skipped, settled = await services.settle_orders(uow, metrics, think=think_ms / 1000)
    return SettleOut(skipped=skipped, settled=settled)


@router.get("/healthz", response_model=HealthOut)
async def healthz(manager: FromDishka[AsyncSessionManager]) -> JSONResponse:
    """The database health check: 200 when healthy, 503 otherwise."""
    report = await manager.health_report(timeout=2.0)
    body = HealthOut(
        healthy=report.healthy,
        engine=report.engine_name,
        latency_ms=round(report.latency * 1000, 2),
        error=report.error,
    )
    code = status.HTTP_200_OK if report.healthy else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body.model_dump(), status_code=code)
