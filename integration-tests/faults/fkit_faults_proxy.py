"""A small asyncio TCP proxy that puts network faults between the app and PostgreSQL.

No fault-injection proxy is installable here, and the few faults the suite needs fit in a
page: every byte between the client and the server passes through two pumps per
connection, and the proxy can

- ``cut()`` every open connection at once (both sockets aborted, as a crashed network
  path or a restarted load balancer would);
- ``delay(seconds)`` every chunk it forwards, in both directions;
- ``stall()`` forwarding: connections are still accepted (and connected upstream), but no
  byte moves in either direction until ``resume()``, as with a black-holed route;
- ``refuse()`` new connections (the listening socket is closed, so connecting gets
  ECONNREFUSED) until ``accept()``; open connections keep working.

It runs in the test's own event loop; start it with ``async with FaultProxy(...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["FaultProxy"]

_CHUNK = 64 * 1024


class _Link:
    """One proxied connection: the client's and the server's streams, and their pumps."""

    __slots__ = ("client", "pumps", "server")

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.pumps: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        # abort(), not close(): no orderly FIN, buffered data is dropped, as when the
        # network path itself goes away.
        for writer in (self.client, self.server):
            if writer is not None:
                writer.transport.abort()
        for pump in self.pumps:
            pump.cancel()


class FaultProxy:
    """Forward TCP from ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``, with faults.

    Args:
        upstream_host: Where the real server listens.
        upstream_port: Its port.
        host: The address the proxy listens on.

    Attributes:
        accepted: Connections accepted since the start.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.accepted = 0
        self._delay = 0.0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    def __repr__(self) -> str:
        return f"<FaultProxy {self.host}:{self.port} -> {self.upstream[0]}:{self.upstream[1]}>"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen on a free port (remembered, so that ``accept()`` reuses it)."""
        await self._listen()
        return self

    async def _listen(self) -> None:
        server = await asyncio.start_server(
            self._handle, self.host, self.port, family=socket.AF_INET, reuse_address=True
        )
        self.port = server.sockets[0].getsockname()[1]
        self._server = server

    async def stop(self) -> None:
        """Stop listening and cut every connection."""
        self._flowing.set()
        if self._server is not None:
            self._server.close()
            self._server = None
        self.cut()
        await asyncio.sleep(0)

    # -- faults -----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        return len(self._links)

    def cut(self) -> int:
        """Abort every open connection, both sides; return how many there were."""
        links = list(self._links)
        self._links.clear()
        for link in links:
            link.abort()
        return len(links)

    def delay(self, seconds: float) -> None:
        """Hold every forwarded chunk for ``seconds`` (0 turns the delay off)."""
        self._delay = seconds

    def stall(self) -> None:
        """Stop moving bytes in both directions; new connections are still accepted."""
        self._flowing.clear()

    def resume(self) -> None:
        """Move bytes again after :meth:`stall`; what was held is forwarded in order."""
        self._flowing.set()

    @property
    def stalled(self) -> bool:
        """Whether :meth:`stall` is in effect."""
        return not self._flowing.is_set()

    def refuse(self) -> None:
        """Close the listening socket: new connections get ECONNREFUSED until :meth:`accept`."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def accept(self) -> None:
        """Listen again, on the same port, after :meth:`refuse`."""
        if self._server is None:
            await self._listen()

    # -- forwarding -------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                # The server is down: the client sees its connection closed.
                return
            link.server = up_writer
            if link not in self._links:  # cut while connecting
                return
            link.pumps = [
                asyncio.ensure_future(self._pump(reader, up_writer)),
                asyncio.ensure_future(self._pump(up_reader, writer)),
            ]
            # When either direction ends, the connection is over in both.
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            self._links.discard(link)
            link.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                # A stalled proxy does not even read, so the sender's buffers fill up as
                # on a black-holed route.
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    return
                if self._delay:
                    await asyncio.sleep(self._delay)
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
