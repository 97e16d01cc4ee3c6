"""``metrics_app()``: a framework-free ASGI app that serves a registry to Prometheus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from fkit_metrics._plugin import multiprocess_dir

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["ASGIApp", "metrics_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""


class _MetricsApp:
    # A class instance, not a function: Starlette's and FastAPI's ``add_route`` treat a
    # plain function as a request handler but any other callable as an ASGI app, so
    # ``app.add_route("/metrics", metrics_app())`` serves /metrics without a redirect.
    __slots__ = ("_inner", "registry")

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import make_asgi_app

        self.registry = registry
        self._inner = make_asgi_app(registry=registry)

    def __repr__(self) -> str:
        return f"<fkit_metrics.metrics_app registry={self.registry!r}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http":
            await self._inner(scope, receive, send)
        elif kind == "lifespan":
            # Served alone (``uvicorn module:app``), the app must answer the lifespan
            # protocol; there is nothing to start or stop.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:
            raise RuntimeError(f"metrics_app serves HTTP only, not {kind!r} connections")


def metrics_app(registry: CollectorRegistry | None = None) -> ASGIApp:
    """An ASGI app that answers every HTTP request with the registry's metrics.

    It speaks plain ASGI, so it runs under any ASGI server or mounts into any ASGI
    framework (``app.add_route("/metrics", metrics_app())`` in FastAPI or Starlette).
    Content negotiation (OpenMetrics via ``Accept``), gzip and ``?name[]=`` filters
    come from prometheus_client's ASGI app.

    Args:
        registry: The registry to serve. None serves prometheus_client's global
            ``REGISTRY``, or, when ``PROMETHEUS_MULTIPROC_DIR`` is set, a registry with
            a ``MultiProcessCollector`` that adds up the metrics of every process.

    Returns:
        The ASGI application.
    """
    if registry is None:
        from prometheus_client import REGISTRY, CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        path = multiprocess_dir()
        if path:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        else:
            registry = REGISTRY
    return _MetricsApp(registry)
