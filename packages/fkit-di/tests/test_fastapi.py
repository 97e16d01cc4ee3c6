"""A FastAPI app wired by dependency-injector: `@inject` and `Provide[...]`, through httpx."""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.
import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from dependency_injector import containers, providers
from dependency_injector.wiring import Provide, inject
from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy import text

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork
from fkit_core.settings import BasePostgresConfig
from fkit_di import DatabaseContainer, shutdown_resources


class Container(containers.DeclarativeContainer):
    config = providers.Dependency(instance_of=BasePostgresConfig)
    database = providers.Container(DatabaseContainer, postgres_config=config, autoload=False)


TABLE: dict[str, str] = {}


@inject
async def add(
    v: int, uow: AsyncSQLAlchemyUnitOfWork[Any] = Depends(Provide[Container.database.uow])
) -> dict[str, int]:
    async with uow.transaction() as tx:
        await tx.session.execute(text(f"INSERT INTO {TABLE['name']} VALUES (:v)"), {"v": v})
    return {"v": v}


@inject
async def refuse(
    v: int, uow: AsyncSQLAlchemyUnitOfWork[Any] = Depends(Provide[Container.database.uow])
) -> None:
    async with uow.transaction() as tx:
        await tx.session.execute(text(f"INSERT INTO {TABLE['name']} VALUES (:v)"), {"v": v})
        raise HTTPException(status_code=409, detail="refused")


@inject
async def healthz(
    manager: AsyncSessionManager = Depends(Provide[Container.database.session_manager]),
) -> dict[str, bool]:
    return {"healthy": await manager.healthcheck()}


def make_app(container: Container) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await container.init_resources()
        yield
        await shutdown_resources(container)

    app = FastAPI(lifespan=lifespan)
    app.add_api_route("/values/{v}", add, methods=["POST"])
    app.add_api_route("/refuse/{v}", refuse, methods=["POST"])
    app.add_api_route("/healthz", healthz, methods=["GET"])
    return app


@pytest.mark.asyncio
async def test_a_fastapi_app_wired_with_inject_and_provide(
    config: BasePostgresConfig,
    table: str,
    committed: Callable[[], Awaitable[list[int]]],
    connections_gone: Callable[[], Awaitable[bool]],
) -> None:
    TABLE["name"] = table
    container = Container(config=config)
    container.wire(modules=[sys.modules[__name__]])
    try:
        app = make_app(container)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        ):
            manager = container.database.session_manager()
            assert (await http.get("/healthz")).json() == {"healthy": True}
            responses = await asyncio.gather(*(http.post(f"/values/{v}") for v in range(8)))
            assert [r.status_code for r in responses] == [200] * 8
            assert (await http.post("/refuse/100")).status_code == 409
            assert (await http.post("/values/1")).status_code == 500  # duplicate key
        assert await committed() == list(range(8))
        assert manager.state == "closed"
        assert await connections_gone()
    finally:
        container.unwire()
