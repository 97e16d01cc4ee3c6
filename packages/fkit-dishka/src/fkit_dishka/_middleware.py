"""Committing a request's transactions before its response starts, not after it is sent.

dishka's web integrations close the REQUEST scope in a middleware, once the response has
been sent; and an exception the framework turns into a response itself (FastAPI's
``HTTPException``, a validation error, your exception handlers) never reaches that
middleware. Without help the request's session would commit after the client already
got its answer, and commit even when the answer is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fkit_dishka._scope import track_request_transactions

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    from fkit_dishka._scope import ScopedTransaction

    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

__all__ = ["ErrorResponse", "TransactionMiddleware", "commit_below_400"]


class ErrorResponse(Exception):
    """What a request's transactions are rolled back with when its response is an error.

    Never raised to your code; it is the ``error`` of the ``TransactionEnded`` event (and
    of the transaction's span) of work rolled back because of the response status.

    Attributes:
        status: The HTTP status of the response.
    """

    def __init__(self, status: int) -> None:
        super().__init__(f"the response status {status} rolled the request's transaction back")
        self.status = status


def commit_below_400(status: int) -> bool:
    """The default rule: commit on 1xx, 2xx and 3xx responses, roll back on 4xx and 5xx."""
    return status < 400


async def _end_all(opened: list[ScopedTransaction[Any]], error: BaseException | None) -> None:
    # Latest first, like nested scopes. A failing COMMIT stops here and propagates: the
    # ones not reached yet are rolled back by the caller's error path.
    while opened:
        await opened.pop().exit(error)


class TransactionMiddleware:
    """ASGI middleware that ends the request's transactions before the response starts.

    The transactions a request opens through fkit-dishka (the REQUEST-scoped
    ``AsyncSession``, Unit of Work transactions, your own :class:`ScopedTransaction`
    factories) are committed when the app starts a response whose status ``commit_when``
    accepts (below 400 by default) and rolled back otherwise, *before* the status line
    goes out. So a failing COMMIT becomes a 500 instead of a success with nothing saved,
    and an ``HTTPException``, a validation error or any exception your handlers turn
    into a 4xx/5xx response rolls the work back. An exception that escapes the app rolls
    them back too. WebSocket and lifespan traffic pass through untouched.

    Add it next to dishka: ``app.add_middleware(TransactionMiddleware)`` (FastAPI,
    Starlette), or wrap any ASGI app: ``TransactionMiddleware(app)``.

    Args:
        app: The ASGI app to wrap.
        commit_when: Decides from the response status whether to commit.
    """

    def __init__(self, app: ASGIApp, *, commit_when: Callable[[int], bool] = commit_below_400):
        self.app = app
        self.commit_when = commit_when

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        opened, token = track_request_transactions()
        commit_when = self.commit_when

        async def send_after_ending(message: Message) -> None:
            if message["type"] == "http.response.start" and opened:
                status = int(message["status"])
                await _end_all(opened, None if commit_when(status) else ErrorResponse(status))
            await send(message)

        try:
            await self.app(scope, receive, send_after_ending)
        except BaseException as exc:
            await _end_all(opened, exc)
            raise
        finally:
            token.var.reset(token)
        # The app returned without starting a response: servers answer 500 for it, and
        # nothing was promised, so nothing is committed.
        await _end_all(opened, ErrorResponse(500) if opened else None)
