"""A FastAPI app wired with dishka's `setup_dishka` and `FromDishka[...]`, through httpx."""

# No `from __future__ import annotations`: FastAPI and dishka read the annotations.
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from dishka import AsyncContainer, make_async_container
from dishka.integrations.fastapi import DishkaRoute, FromDishka, inject, setup_dishka
from fastapi import APIRouter, FastAPI, HTTPException
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork
from fkit_core.settings import BasePostgresConfig
from fkit_dishka import AsyncDatabaseProvider, AsyncUnitOfWorkProvider


def make_app(container: AsyncContainer, table: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Start the manager (and check the database) before serving, not on the first request.
        await container.get(AsyncSessionManager)
        yield
        await container.close()

    app = FastAPI(lifespan=lifespan)
    router = APIRouter(route_class=DishkaRoute)  # injects FromDishka[...] without @inject

    @router.post("/values/{v}")
    async def add(v: int, session: FromDishka[AsyncSession]) -> dict[str, int]:
        await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
        return {"v": v}

    @app.post("/fail/{v}")
    @inject
    async def fail(v: int, session: FromDishka[AsyncSession]) -> None:
        await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
        raise RuntimeError("the handler failed after writing")

    @app.post("/refuse/{v}")
    @inject
    async def refuse(v: int, session: FromDishka[AsyncSession]) -> None:
        await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
        raise HTTPException(status_code=409, detail="refused")

    @app.post("/uow/refuse/{v}")
    @inject
    async def uow_refuse(v: int, uow: FromDishka[AsyncSQLAlchemyUnitOfWork]) -> None:
        async with uow.transaction() as tx:
            await tx.session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
            raise HTTPException(status_code=409, detail="refused")

    app.include_router(router)
    setup_dishka(container, app)
    return app


@pytest.fixture
def container(config: BasePostgresConfig) -> AsyncContainer:
    return make_async_container(
        AsyncDatabaseProvider(autoload=False),
        AsyncUnitOfWorkProvider(),
        context={BasePostgresConfig: config},
    )


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.asyncio
async def test_requests_commit_and_a_failing_handler_rolls_back(
    container: AsyncContainer, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    app = make_app(container, table)
    async with app.router.lifespan_context(app), client(app) as http:
        assert (await http.post("/values/1")).status_code == 200
        assert await committed() == [1]
        assert (await http.post("/fail/2")).status_code == 500
        assert await committed() == [1]


@pytest.mark.asyncio
async def test_concurrent_requests_each_get_their_own_session_and_transaction(
    container: AsyncContainer, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    app = make_app(container, table)
    async with app.router.lifespan_context(app), client(app) as http:
        responses = await asyncio.gather(*(http.post(f"/values/{v}") for v in range(12)))
        assert [r.status_code for r in responses] == [200] * 12
        # A duplicate fails alone; the others' work is unaffected.
        assert (await http.post("/values/3")).status_code == 500
    assert await committed() == list(range(12))


@pytest.mark.asyncio
async def test_an_http_exception_raised_inside_a_uow_transaction_rolls_it_back(
    container: AsyncContainer, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    app = make_app(container, table)
    async with app.router.lifespan_context(app), client(app) as http:
        assert (await http.post("/uow/refuse/5")).status_code == 409
    assert await committed() == []


@pytest.mark.asyncio
async def test_an_http_exception_never_reaches_dishka_so_the_request_session_commits(
    container: AsyncContainer, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    # FastAPI turns HTTPException into a response inside the app; dishka's middleware,
    # which closes the REQUEST scope, sees a normal return. Documented in docs/dishka.md:
    # open the transaction in the handler (the UoW) when such exceptions must roll back.
    app = make_app(container, table)
    async with app.router.lifespan_context(app), client(app) as http:
        assert (await http.post("/refuse/6")).status_code == 409
    assert await committed() == [6]


@pytest.mark.asyncio
async def test_the_app_shutting_down_closes_the_manager_and_its_connections(
    container: AsyncContainer,
    table: str,
    connections: Callable[[], Awaitable[int]],
    connections_gone: Callable[[], Awaitable[bool]],
) -> None:
    app = make_app(container, table)
    async with app.router.lifespan_context(app), client(app) as http:
        manager = await container.get(AsyncSessionManager)
        assert manager.state == "started"
        await asyncio.gather(*(http.post(f"/values/{v}") for v in range(5)))
        assert await connections() >= 1
    assert manager.state == "closed"
    assert await connections_gone()
