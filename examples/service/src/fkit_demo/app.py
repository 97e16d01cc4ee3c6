"""The FastAPI application: routes, dishka, ``/metrics``, and a lifespan owning the database."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from dishka.integrations.fastapi import setup_dishka
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.routing import Route

from fkit_core import AsyncSessionManager
from fkit_demo.api import router
from fkit_demo.container import make_container
from fkit_demo.models import metadata
from fkit_demo.services import DemoMetrics, settle_periodically
from fkit_demo.uow import DemoUnitOfWork
from fkit_dishka import TransactionMiddleware
from fkit_metrics import metrics_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from opentelemetry.trace import TracerProvider

    from fkit_core import BasePostgresConfig

__all__ = ["apply_schema", "create_app"]


async def apply_schema(manager: AsyncSessionManager) -> None:
    """Create the demo's tables that do not exist yet (a real service runs migrations)."""
    async with manager.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


def create_app(
    config: BasePostgresConfig,
    *,
    registry: CollectorRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
    settle_every: float | None = None,
    autoload: bool | None = None,
    on_started: Callable[[AsyncSessionManager], None] | None = None,
    on_stopped: Callable[[AsyncSessionManager], None] | None = None,
) -> FastAPI:
    """Build the service.

    Its lifespan starts the session manager (so a bad URL fails the start, not the first
    request), applies the schema, optionally runs the settle job in the background, and at
    shutdown closes the dishka container, which closes the manager and its connections.

    Args:
        config: The database settings.
        registry: Where fkit's and the demo's metrics go and what ``/metrics`` serves; a
            new ``CollectorRegistry`` when None.
        tracer_provider: Where spans go; OpenTelemetry's global provider when None.
        settle_every: Seconds between background runs of the settle job; none when None.
        autoload: Plugin autoload (None: on unless the environment turns it off).
        on_started: Called with the started manager once the schema is in place.
        on_stopped: Called with the manager after the container was closed.
    """
    registry = registry if registry is not None else CollectorRegistry()
    container = make_container(
        config, registry=registry, tracer_provider=tracer_provider, autoload=autoload
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager: AsyncSessionManager | None = None
        try:
            manager = await container.get(AsyncSessionManager)
            await apply_schema(manager)
            background: asyncio.Task[None] | None = None
            if settle_every:
                uow = await container.get(DemoUnitOfWork)
                metrics = await container.get(DemoMetrics)
                background = asyncio.create_task(settle_periodically(uow, metrics, settle_every))
            if on_started is not None:
                on_started(manager)
            try:
                yield
            finally:
                if background is not None:
                    background.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await background
        finally:
            await container.close()
            if manager is not None and on_stopped is not None:
                on_stopped(manager)

    app = FastAPI(title="fkit-demo", lifespan=lifespan)
    app.include_router(router)
    # An ASGI app of its own, served as is (a plain Route: a Mount would redirect to /metrics/).
    app.router.routes.append(Route("/metrics", metrics_app(registry), methods=["GET"]))
    # Request-scoped sessions end before the response: committed for a success, rolled
    # back for an error response (the endpoints here use the UoW, which commits itself).
    app.add_middleware(TransactionMiddleware)
    setup_dishka(container, app)
    return app
