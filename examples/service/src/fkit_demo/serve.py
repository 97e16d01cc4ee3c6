"""``fkit-demo``: serve the demo with uvicorn on 127.0.0.1, printing its traces."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn

from fkit_core import AsyncSessionManager, discover_plugins
from fkit_core.errors import FkitError
from fkit_demo.app import create_app
from fkit_demo.tracing import console_tracer_provider

if TYPE_CHECKING:
    from collections.abc import Callable

    from fkit_core import BasePostgresConfig

__all__ = ["ServeResult", "bind_socket", "check_database", "describe_plugins", "serve"]

HOST = "127.0.0.1"


@dataclass
class ServeResult:
    """What :func:`serve` got to: filled in even when a Ctrl-C ends it with an exception."""

    started: bool = False
    url: str | None = None


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one, known before serving)."""
    # proto=IPPROTO_TCP, not the default 0: asyncio turns Nagle's algorithm off only on
    # sockets that say they are TCP, and with it on every response waits ~40 ms for an ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def describe_plugins(manager: AsyncSessionManager) -> list[str]:
    """Each plugin set up on ``manager``, and whether discovery or the demo supplied it."""
    installed = {found.name: found for found in discover_plugins()}
    described = []
    for plugin in manager.plugins:
        found = installed.get(plugin.name)
        if found is None:
            origin = "passed explicitly"
        elif found.plugin is plugin:
            origin = f"auto-discovered from {found.distribution}"
        else:
            origin = f"from {found.distribution}, configured by the demo"
        described.append(f"{plugin.name} ({origin})")
    return described


async def check_database(config: BasePostgresConfig) -> None:
    """Connect once before serving, so an unreachable database is one clear line.

    Without it the failure would surface inside uvicorn's lifespan, as a traceback.

    Raises:
        RuntimeError: The database cannot be used; the message says why and what to do.
    """
    probe = AsyncSessionManager(config, plugins=[], autoload=False, name="fkit-demo-check")
    try:
        await probe.start()
    except FkitError as exc:
        raise RuntimeError(
            f"cannot use the database at {config.masked_url()}: {exc}. Check that it is "
            "running and that FKIT_DB_URL is right, or unset FKIT_DB_URL to run the demo "
            "on an embedded PostgreSQL"
        ) from exc
    finally:
        await probe.close()


async def serve(
    config: BasePostgresConfig,
    *,
    port: int = 8000,
    settle_every: float | None = 10.0,
    say: Callable[[str], None] = print,
    result: ServeResult | None = None,
) -> ServeResult:
    """Serve until Ctrl-C (or SIGTERM); the result says whether the service started.

    uvicorn handles the signal: it stops accepting requests, lets running ones finish,
    then runs the lifespan's shutdown, which closes the dishka container and with it the
    session manager. Spans are printed one line each as they end. Once shut down,
    uvicorn raises the signal again: pass ``result`` to read it after the
    ``KeyboardInterrupt``.

    Raises:
        RuntimeError: The port is taken (or cannot be bound), or the database cannot be used.
    """
    outcome = result if result is not None else ServeResult()
    await check_database(config)
    try:
        sock = bind_socket(HOST, port)
    except OSError as exc:
        raise RuntimeError(f"cannot listen on {HOST}:{port}: {exc.strerror}; try --port") from exc
    url = outcome.url = f"http://{HOST}:{sock.getsockname()[1]}"
    provider = console_tracer_provider()

    def started(manager: AsyncSessionManager) -> None:
        say("fkit-demo: plugins set up on the session manager:")
        for line in describe_plugins(manager):
            say(f"fkit-demo:   {line}")
        say(
            f"fkit-demo: schema applied; settle job every {settle_every} s"
            if settle_every
            else "fkit-demo: schema applied"
        )
        say(
            f"fkit-demo: serving on {url}  (Ctrl-C stops it)\n"
            f"fkit-demo:   curl -X POST {url}/users -H 'content-type: application/json' "
            '-d \'{"email": "ada@example.org", "name": "Ada"}\'\n'
            f"fkit-demo:   curl {url}/healthz ; curl {url}/metrics ; open {url}/docs"
        )

    def stopped(manager: AsyncSessionManager) -> None:
        say(f"fkit-demo: container closed; the session manager is {manager.state}")

    app = create_app(
        config,
        tracer_provider=provider,
        settle_every=settle_every,
        on_started=started,
        on_stopped=stopped,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="info", lifespan="on", timeout_graceful_shutdown=10)
    )
    try:
        await server.serve(sockets=[sock])
    finally:
        outcome.started = server.started
        sock.close()
        provider.shutdown()  # prints the spans still queued
    return outcome
