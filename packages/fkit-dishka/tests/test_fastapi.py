"""A FastAPI app wired with dishka's `setup_dishka` and `FromDishka[...]`, through httpx."""

# No `from __future__ import annotations`: FastAPI and dishka read the annotations.
import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from dishka import AsyncContainer, make_async_container
from dishka.integrations.fastapi import DishkaRoute, FromDishka, inject, setup_dishka
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, AsyncSQLAlchemyUowTransaction
from fkit_core.events import Event, TransactionEnded
from fkit_core.settings import BasePostgresConfig
from fkit_dishka import AsyncDatabaseProvider, AsyncUnitOfWorkProvider, TransactionMiddleware


def make_app(container: AsyncContainer, table: str, *, transactions: bool = True) -> FastAPI:
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

    @app.post("/invalid/{v}")
    @inject
    async def invalid(v: int, session: FromDishka[AsyncSession]) -> None:
        await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
        raise ValueError("turned into a 422 by the app's own exception handler")

    @app.post("/missing/{v}")
    @inject
    async def missing(v: int, session: FromDishka[AsyncSession]) -> JSONResponse:
        await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
        return JSONResponse({"detail": "not found"}, status_code=404)

    @app.post("/uow/refuse/{v}")
    @inject
    async def uow_refuse(v: int, uow: FromDishka[AsyncSQLAlchemyUnitOfWork]) -> None:
        async with uow.transaction() as tx:
            await tx.session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
            raise HTTPException(status_code=409, detail="refused")

    @app.post("/uow/request/{v}")
    @inject
    async def uow_request(v: int, tx: FromDishka[AsyncSQLAlchemyUowTransaction]) -> None:
        await tx.session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
        raise HTTPException(status_code=409, detail="refused")

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    app.include_router(router)
    if transactions:
        app.add_middleware(TransactionMiddleware)
    setup_dishka(container, app)
    return app


@pytest.fixture
def container(config: BasePostgresConfig) -> AsyncContainer:
    return make_async_container(
        AsyncDatabaseProvider(autoload=False),
        AsyncUnitOfWorkProvider(),
        context={BasePostgresConfig: config},
    )


def client(app: Any) -> httpx.AsyncClient:
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
async def test_without_the_middleware_an_http_exception_commits_the_request_session(
    container: AsyncContainer, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    # Why TransactionMiddleware exists: FastAPI turns HTTPException into a response
    # inside the app, and dishka's middleware, which closes the REQUEST scope after the
    # response was sent, sees a normal return.
    app = make_app(container, table, transactions=False)
    async with app.router.lifespan_context(app), client(app) as http:
        assert (await http.post("/refuse/6")).status_code == 409
    assert await committed() == [6]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "status"),
    [("/refuse", 409), ("/invalid", 422), ("/missing", 404), ("/uow/request", 409)],
    ids=["http-exception", "app-exception-handler", "returned-error-response", "uow-scope"],
)
async def test_an_error_response_rolls_the_request_transaction_back(
    container: AsyncContainer,
    table: str,
    committed: Callable[[], Awaitable[list[int]]],
    path: str,
    status: int,
) -> None:
    manager = await container.get(AsyncSessionManager)
    events: list[Event] = []
    manager.bus.subscribe(TransactionEnded, events.append)
    app = make_app(container, table)
    async with app.router.lifespan_context(app), client(app) as http:
        assert (await http.post(f"{path}/7")).status_code == status
        assert (await http.post("/values/8")).status_code == 200
    assert await committed() == [8]
    ended = [e for e in events if isinstance(e, TransactionEnded)]
    assert [(e.outcome, e.error) for e in ended] == [
        ("error", "ErrorResponse"),
        ("commit", None),
    ]


@pytest.mark.asyncio
async def test_the_commit_happens_before_the_response_starts(
    container: AsyncContainer, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    app = make_app(container, table)
    seen_at_response_start: list[list[int]] = []

    async def outermost(scope: Any, receive: Any, send: Any) -> None:
        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen_at_response_start.append(await committed())
            await send(message)

        await app(scope, receive, watch)

    async with app.router.lifespan_context(app), client(outermost) as http:
        assert (await http.post("/values/9")).status_code == 200
    assert seen_at_response_start == [[9]]


@pytest.mark.asyncio
async def test_a_failing_commit_becomes_a_500_not_a_success(
    container: AsyncContainer,
    admin: AsyncSessionManager,
    committed: Callable[[], Awaitable[list[int]]],
    table: str,
) -> None:
    # A deferred unique constraint is checked at COMMIT only: the handler returns
    # normally, and the failure comes after it, when the response would have said 200.
    deferred = f"{table}_deferred"
    async with admin.get_transaction() as s:
        await s.execute(
            text(
                f"CREATE TABLE {deferred} (v int, CONSTRAINT {deferred}_v UNIQUE (v) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    try:
        app = make_app(container, table)

        @app.post("/twice/{v}")
        @inject
        async def twice(v: int, session: FromDishka[AsyncSession]) -> dict[str, int]:
            await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})
            for _ in range(2):
                await session.execute(text(f"INSERT INTO {deferred} VALUES (:v)"), {"v": v})
            return {"v": v}

        async with app.router.lifespan_context(app), client(app) as http:
            response = await http.post("/twice/10")
            assert response.status_code == 500
            assert (await http.post("/values/11")).status_code == 200
        assert await committed() == [11]
    finally:
        async with admin.get_transaction() as s:
            await s.execute(text(f"DROP TABLE {deferred}"))


@pytest.mark.asyncio
async def test_commit_when_decides_which_statuses_commit(
    container: AsyncContainer, table: str, committed: Callable[[], Awaitable[list[int]]]
) -> None:
    app = make_app(container, table, transactions=False)
    app.add_middleware(TransactionMiddleware, commit_when=lambda status: status < 500)
    async with app.router.lifespan_context(app), client(app) as http:
        assert (await http.post("/refuse/12")).status_code == 409
        assert (await http.post("/fail/13")).status_code == 500
    assert await committed() == [12]


@pytest.mark.asyncio
async def test_the_session_used_after_the_response_started_is_rolled_back_and_returned(
    container: AsyncContainer,
    table: str,
    committed: Callable[[], Awaitable[list[int]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(container, table)

    @app.get("/stream/{v}")
    @inject
    async def stream(v: int, session: FromDishka[AsyncSession]) -> StreamingResponse:
        await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v})

        async def body() -> AsyncIterator[bytes]:
            # The transaction was committed before the status line went out; this
            # write opens a new one that nobody commits.
            await session.execute(text(f"INSERT INTO {table} VALUES (:v)"), {"v": v + 100})
            yield b"done"

        return StreamingResponse(body())

    async with app.router.lifespan_context(app), client(app) as http:
        manager = await container.get(AsyncSessionManager)
        with caplog.at_level(logging.WARNING, logger="fkit_dishka"):
            assert (await http.get("/stream/14")).text == "done"
        assert manager.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await committed() == [14]
    assert "used after its transaction ended" in caplog.text


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
