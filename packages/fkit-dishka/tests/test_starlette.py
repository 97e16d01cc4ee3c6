"""A plain Starlette app: dishka's container middleware and `inject`, through httpx."""

# No `from __future__ import annotations`: dishka reads the endpoints' annotations.
from collections.abc import Awaitable, Callable

import httpx
import pytest
from dishka import make_async_container
from dishka.integrations.starlette import ContainerMiddleware, FromDishka, inject
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fkit_core import AsyncSessionManager
from fkit_core.settings import BasePostgresConfig
from fkit_dishka import AsyncDatabaseProvider, TransactionMiddleware


def adder(table: str) -> Callable[..., Awaitable[JSONResponse]]:
    """``POST /values/{v}``: inserts v; ``?fail=1`` then raises, ``?refuse=1`` answers 409."""

    @inject
    async def add(request: Request, session: FromDishka[AsyncSession]) -> JSONResponse:
        v = int(request.path_params["v"])
        await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
        if request.query_params.get("fail"):
            raise RuntimeError("the handler failed after writing")
        if request.query_params.get("refuse"):
            raise HTTPException(status_code=409, detail="refused")
        return JSONResponse({"v": v})

    return add


@pytest.mark.asyncio
async def test_a_starlette_app_commits_requests_and_rolls_back_a_failing_one(
    config: BasePostgresConfig,
    table: str,
    committed: Callable[[], Awaitable[list[int]]],
    connections: Callable[[], Awaitable[int]],
    connections_gone: Callable[[], Awaitable[bool]],
) -> None:
    container = make_async_container(AsyncDatabaseProvider(config, autoload=False))
    add = adder(table)

    # dishka's own `setup_dishka` for Starlette is deprecated (it warns); wiring the
    # middleware and the container by hand is what it does.
    app = Starlette(
        routes=[Route("/values/{v}", add, methods=["POST"])],
        middleware=[Middleware(ContainerMiddleware)],
    )
    app.state.dishka_container = container
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.post("/values/1")).json() == {"v": 1}
        assert (await http.post("/values/2?fail=1")).status_code == 500
    assert await committed() == [1]

    manager = await container.get(AsyncSessionManager)
    await container.close()
    assert manager.state == "closed"
    assert await connections_gone()


class Tagged(BaseHTTPMiddleware):
    """A user's BaseHTTPMiddleware: it runs the app in a task of its own."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-tagged"] = "1"
        return response


@pytest.mark.asyncio
async def test_transaction_middleware_outside_dishka_and_a_task_spawning_middleware(
    config: BasePostgresConfig, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    # TransactionMiddleware outermost, dishka's next, then a BaseHTTPMiddleware that runs
    # the endpoint in another task: the transaction begun there is still ended before
    # the status line goes out, committed for a 200 and rolled back for a 409.
    container = make_async_container(AsyncDatabaseProvider(config, autoload=False))
    add = adder(table)

    app = Starlette(
        routes=[Route("/values/{v}", add, methods=["POST"])],
        middleware=[
            Middleware(TransactionMiddleware),
            Middleware(ContainerMiddleware),
            Middleware(Tagged),
        ],
    )
    app.state.dishka_container = container
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        ok = await http.post("/values/1")
        assert (ok.status_code, ok.headers["x-tagged"]) == (200, "1")
        assert (await http.post("/values/2?refuse=1")).status_code == 409
    assert await committed() == [1]
    await container.close()
