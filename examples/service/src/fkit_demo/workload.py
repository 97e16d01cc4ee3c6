"""``fkit-demo --workload``: the service in-process, a concurrent workload over HTTP, a summary."""

from __future__ import annotations

import asyncio
import random
import uuid
from time import perf_counter
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

from fkit_demo.app import create_app
from fkit_demo.serve import bind_socket, describe_plugins
from fkit_demo.summary import Sample, WorkloadSummary, scrape
from fkit_demo.tracing import counting_tracer_provider

if TYPE_CHECKING:
    from collections.abc import Collection

    from fkit_core import AsyncSessionManager, BasePostgresConfig

__all__ = ["run_workload"]

ACCOUNTS = 8
OPENING_CENTS = 100_000
# Simulated work between a transfer's read and its write, and while the settle job holds
# its lock: it makes concurrent requests overlap for certain, so the conflicts the summary
# counts are real ones, produced by PostgreSQL, not by chance.
HOT_THINK_MS = 10
THINK_MS = 1
SETTLE_THINK_MS = 200


class _Client:
    """Sends requests, at most ``concurrency`` at a time, and records every answer."""

    def __init__(self, http: httpx.AsyncClient, concurrency: int, summary: WorkloadSummary):
        self._http = http
        self._slots = asyncio.Semaphore(concurrency)
        self._summary = summary

    async def call(
        self, method: str, url: str, route: str, expected: Collection[int], **kwargs: Any
    ) -> httpx.Response | None:
        async with self._slots:
            started = perf_counter()
            try:
                response = await self._http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                response = None
                error = f"{type(exc).__name__}: {exc}"
            seconds = perf_counter() - started
        status = response.status_code if response is not None else 0
        self._summary.samples.append(Sample(route, status, seconds, status in expected))
        if status not in expected:
            detail = response.text[:200] if response is not None else error
            self._summary.unexpected.append(f"{method} {url} -> {status or 'no answer'}: {detail}")
        return response


def _json(response: httpx.Response | None, *statuses: int) -> dict[str, Any] | None:
    if response is None or response.status_code not in statuses:
        return None
    body: dict[str, Any] = response.json()
    return body


async def _drive(client: _Client, requests: int, concurrency: int, summary: WorkloadSummary) -> str:
    """Run the workload's phases in order; returns the scraped ``/metrics`` page."""
    # The same plan for the same arguments; nothing secret is drawn from it.
    rng = random.Random(requests * 1009 + concurrency)  # noqa: S311
    run = uuid.uuid4().hex[:8]  # a database may hold earlier runs' rows: tell ours apart
    n_users = max(2, requests // 8)
    n_orders = max(2, requests // 4)
    n_transfers = max(2, requests // 4)
    n_settle = max(2, concurrency)

    await client.call("GET", "/healthz", "GET /healthz", {200})

    opened = await asyncio.gather(
        *(
            client.call(
                "POST",
                "/accounts",
                "POST /accounts",
                {201},
                json={"owner": f"{run}-account-{i}", "balance_cents": OPENING_CENTS},
            )
            for i in range(ACCOUNTS)
        )
    )
    accounts = [body["id"] for r in opened if (body := _json(r, 201))]
    summary.money_before = OPENING_CENTS * len(accounts)

    def user(i: int) -> dict[str, str]:
        return {"email": f"user{i}-{run}@example.org", "name": f"User {i}"}

    created = await asyncio.gather(
        *(client.call("POST", "/users", "POST /users", {201}, json=user(i)) for i in range(n_users))
    )
    users = [body["id"] for r in created if (body := _json(r, 201))]
    if len(accounts) < ACCOUNTS or len(users) < n_users:
        # Nothing after this makes sense without them.
        raise RuntimeError("the workload's set-up failed: " + "; ".join(summary.unexpected[:3]))
    # A taken email is refused with 409 (UniqueViolationError from the database).
    await asyncio.gather(
        *(
            client.call("POST", "/users", "POST /users", {409}, json=user(i))
            for i in range(max(1, n_users // 10))
        )
    )

    def order() -> dict[str, Any]:
        items = [
            {
                "sku": f"SKU-{rng.randint(1, 99)}",
                "quantity": rng.randint(1, 5),
                "unit_cents": rng.randint(100, 5000),
            }
            for _ in range(rng.randint(1, 3))
        ]
        return {"items": items, "note": rng.choice([None, "gift wrap", "leave at the door"])}

    placed = await asyncio.gather(
        *(
            client.call(
                "POST",
                f"/users/{users[i % len(users)]}/orders",
                "POST /users/{id}/orders",
                {201},
                json=order(),
            )
            for i in range(n_orders)
        ),
        client.call(
            "POST", f"/users/{uuid.uuid4()}/orders", "POST /users/{id}/orders", {404}, json=order()
        ),
    )
    summary.orders_created = sum(1 for r in placed if r is not None and r.status_code == 201)

    # Transfers: a burst on two hot accounts (every pair of them conflicts), then random pairs.
    plan = []
    for i in range(n_transfers):
        if i < min(n_transfers, concurrency):
            source, target = (accounts[0], accounts[1]) if i % 2 else (accounts[1], accounts[0])
            think = HOT_THINK_MS
        else:
            source, target = rng.sample(accounts, 2)
            think = THINK_MS
        plan.append(
            {
                "from_account": source,
                "to_account": target,
                "amount_cents": rng.randint(1, 500),
                "think_ms": think,
            }
        )
    moved = await asyncio.gather(
        *(client.call("POST", "/transfers", "POST /transfers", {200, 422}, json=t) for t in plan)
    )
    summary.transfers = len(plan)
    attempts = [body["attempts"] for r in moved if (body := _json(r, 200, 422, 404, 409))]
    summary.retries_seen_by_clients = sum(n - 1 for n in attempts)
    summary.most_attempts = max(attempts, default=0)

    # Settle jobs started together: one takes the advisory lock, the others skip at once.
    runs = await asyncio.gather(
        *(
            client.call(
                "POST",
                "/jobs/settle-orders",
                "POST /jobs/settle-orders",
                {200},
                params={"think_ms": SETTLE_THINK_MS},
            )
            for _ in range(n_settle)
        )
    )
    bodies = [body for r in runs if (body := _json(r, 200))]
    summary.settle_runs = len(runs)
    summary.lock_skips = sum(1 for body in bodies if body["skipped"])
    final = _json(
        await client.call("POST", "/jobs/settle-orders", "POST /jobs/settle-orders", {200}), 200
    )
    summary.final_settle = (final["skipped"], final["settled"]) if final else None

    read = await asyncio.gather(
        *(client.call("GET", f"/users/{u}", "GET /users/{id}", {200}) for u in users),
        client.call("GET", f"/users/{uuid.uuid4()}", "GET /users/{id}", {404}),
    )
    summary.orders_settled = sum(
        1
        for r in read
        if (body := _json(r, 200))
        for o in body["orders"]
        if o["status"] == "settled" and o["settled_at"] is not None
    )

    balances = await asyncio.gather(
        *(client.call("GET", f"/accounts/{a}", "GET /accounts/{id}", {200}) for a in accounts)
    )
    found = [body["balance_cents"] for r in balances if (body := _json(r, 200))]
    summary.money_after = sum(found) if len(found) == len(accounts) else None

    await client.call("GET", "/healthz", "GET /healthz", {200})
    metrics = await client.call("GET", "/metrics", "GET /metrics", {200})
    return metrics.text if metrics is not None else ""


async def run_workload(
    config: BasePostgresConfig, *, requests: int = 200, concurrency: int = 8, timeout: float = 120.0
) -> WorkloadSummary:
    """Serve the demo in-process on a free port, drive a workload against it, and check it.

    The workload opens accounts, creates users (and a few duplicates, which get 409),
    places orders, runs SERIALIZABLE transfers of which many conflict on purpose, starts
    settle jobs together so that they contend for their advisory lock, reads everything
    back, then scrapes ``/metrics``. The summary's ``problems`` lists every check that
    failed; ``ok`` is True when there is none.

    Args:
        config: The database settings.
        requests: About how many requests to send (at least 20).
        concurrency: Requests in flight at most (at least 1).
        timeout: Seconds the whole run may take.

    Raises:
        TimeoutError: The run took longer than ``timeout``.
        RuntimeError: The service did not start (its log says why), or did not answer
            the set-up requests (accounts, users) as expected.
    """
    if requests < 20 or concurrency < 1:
        raise ValueError("requests must be at least 20 and concurrency at least 1")
    summary = WorkloadSummary(concurrency=concurrency)
    provider, spans = counting_tracer_provider()

    def started(manager: AsyncSessionManager) -> None:
        summary.plugins = describe_plugins(manager)

    app = create_app(config, tracer_provider=provider, on_started=started)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=10
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(timeout):
            while not server.started:
                if serving.done():
                    raise RuntimeError("the service did not start; its log above says why")
                await asyncio.sleep(0.01)
            limits = httpx.Limits(max_connections=concurrency + 4)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=30.0, limits=limits
            ) as http:
                started_at = perf_counter()
                page = await _drive(
                    _Client(http, concurrency, summary), requests, concurrency, summary
                )
                summary.elapsed = perf_counter() - started_at
    finally:
        server.should_exit = True
        await serving
        sock.close()
        provider.shutdown()
    summary.transactions = {
        (kind, outcome): int(n)
        for (kind, outcome), n in scrape(
            page, "fkit_postgres_transactions_total", ("kind", "outcome")
        ).items()
    }
    summary.retries = {
        reason: int(n)
        for (reason,), n in scrape(page, "fkit_postgres_retries_total", ("reason",)).items()
    }
    summary.lock_skips_counted = int(
        scrape(page, "fkit_demo_jobs_total", ("result",)).get(("skipped",), 0)
    )
    summary.locks_not_acquired = int(
        sum(scrape(page, "fkit_postgres_locks_not_acquired_total", ()).values())
    )
    summary.spans = spans.counts
    summary.check()
    return summary
