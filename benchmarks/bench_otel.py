"""fkit-otel overhead: transactions per second with the plugin against without, side by side.

    uv run python benchmarks/bench_otel.py [--url URL] [--seconds 0.5] [--rounds 30]

One session manager, so every configuration uses the same pooled connections (separate
managers, each with its own server processes, differ by more than the plugin costs), run
in four configurations: no plugin; no plugin again, as a control (its ratio to the first
is the noise of the machine); the plugin (``OtelPlugin()`` set up on it, its engine
instrumented) with no tracer provider set, so OpenTelemetry's no-op tracer (what an
application pays when it installs fkit-otel but exports nothing); and the plugin on the
SDK's ``TracerProvider`` with a ``SimpleSpanProcessor`` into an ``InMemorySpanExporter``
(every span recorded; the exporter is emptied each round). Each unit of work is one Unit
of Work transaction with one INSERT ... RETURNING and a COMMIT, so a traced one makes a
``uow.transaction`` span and a statement span. Rounds rotate the order of the four at
concurrency 1 and 16, so drift on the machine hits all alike; the table shows the median
throughputs and the median, over the rounds, of each one's ratio to no plugin in the same
round (target for the no-op tracer: at least 0.97).

Because whole transactions on a shared machine are noisy, it also times exactly what the
plugin adds to each such transaction without the database: the scope hook around the
body and the cursor listeners around one statement.

The database is --url, else FKIT_TEST_DATABASE_URL, else a throwaway server from
fkit-testing's launcher. Numbers are for reading, not asserting: these are shared
2-core machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
from typing import TYPE_CHECKING, Any

from benchlib import database, per_call_us, run_for
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fkit_core import (
    AsyncSessionManager,
    AsyncSQLAlchemyUnitOfWork,
    BasePostgresConfig,
    PoolSettings,
    TransactionScope,
)
from fkit_otel import OtelPlugin, instrument_sqlalchemy, uninstrument_sqlalchemy
from fkit_otel._manager import ManagerTracing
from fkit_otel._statements import _StatementListeners
from fkit_otel._tracing import Tracing

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

INSERT = text("INSERT INTO bench_otel_rows (note) VALUES ('x') RETURNING id")
STATEMENT = "INSERT INTO bench_otel_rows (note) VALUES ('x') RETURNING id"


class _Context:
    """Stands in for SQLAlchemy's execution context: the listeners keep the span on it."""


def bench_hooks(n: int = 50_000) -> dict[str, float]:
    """What the plugin adds to a one-statement transaction, without the database."""
    manager = AsyncSessionManager(
        "postgresql+asyncpg://bench@localhost/bench", plugins=[], autoload=False, name="bench"
    )
    engine = manager.engine  # builds the engine object; nothing connects
    session = manager.session_maker()
    scope = TransactionScope("bench", "primary", "transaction", None, False, False, session)
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    results: dict[str, float] = {}
    for label, provider in (("no-op tracer", None), ("SDK, in memory", sdk)):
        wiring = ManagerTracing(manager)
        tracing = Tracing(provider)
        wiring.tracing = tracing
        listeners = _StatementListeners(tracing, engine.sync_engine)

        def one_transaction(
            wiring: ManagerTracing = wiring, listeners: _StatementListeners = listeners
        ) -> None:
            with wiring.scope(scope):
                context: Any = _Context()
                listeners.before(None, None, STATEMENT, None, context, False)  # type: ignore[arg-type]
                listeners.after(None, None, STATEMENT, None, context, False)  # type: ignore[arg-type]

        results[f"scope hook + 1 statement, {label} (us)"] = per_call_us(one_transaction, n)
        wiring.remove()
        exporter.clear()
    return results


def _paired_ratio(samples: dict[str, list[float]], label: str) -> float:
    """The median over the rounds of ``label``'s throughput over no plugin's in that round."""
    pairs = zip(samples[label], samples["plain"], strict=True)
    return statistics.median(a / b for a, b in pairs)


async def _run_for(seconds: float, concurrency: int, manager: AsyncSessionManager) -> float:
    uow = AsyncSQLAlchemyUnitOfWork(manager)

    async def one(_worker: int) -> None:
        async with uow.transaction() as tx:
            (await tx.session.execute(INSERT)).scalar_one()

    return await run_for(seconds, concurrency, one)


@contextlib.contextmanager
def _traced(manager: AsyncSessionManager, provider: TracerProvider | None) -> Iterator[None]:
    """The plugin on ``manager`` for a while: its scope hook, and its engine instrumented."""
    plugin = OtelPlugin(tracer_provider=provider)
    plugin.setup(manager)
    instrument_sqlalchemy(manager.engine, tracer_provider=provider)
    try:
        yield
    finally:
        plugin.teardown(manager)
        uninstrument_sqlalchemy(manager.engine)
        # SQLAlchemy never clears an engine's `_has_events` when its last listener is
        # removed, and with it set every connection dispatches events on every
        # statement. This manager's engine has no other engine listeners (no plugins,
        # no pgbouncer mode): put the flag back, so the configuration after this one
        # runs as on an engine that was never instrumented.
        manager.engine.sync_engine._has_events = False


async def bench(url: str, seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    engine_url = make_url(url).set(drivername="postgresql+asyncpg")
    config = BasePostgresConfig(
        url=engine_url.render_as_string(hide_password=False),
        pool=PoolSettings(size=16, max_overflow=0),
    )
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    # One manager, so every configuration runs on the same pooled connections (the same
    # server processes): separate managers differ by more than the plugin costs.
    manager = AsyncSessionManager(config, plugins=[], autoload=False, name="bench")
    await manager.start()
    configurations: dict[str, Callable[[], contextlib.AbstractContextManager[object]]] = {
        "plain": contextlib.nullcontext,
        "control": contextlib.nullcontext,
        # No provider is ever set in this process: the global one hands out no-op tracers.
        "no-op": lambda: _traced(manager, None),
        "sdk": lambda: _traced(manager, sdk),
    }
    async with manager.get_transaction() as session:
        await session.execute(text("DROP TABLE IF EXISTS bench_otel_rows"))
        await session.execute(
            text("CREATE UNLOGGED TABLE bench_otel_rows (id bigserial PRIMARY KEY, note text)")
        )
    results: dict[str, dict[str, float]] = {}
    try:
        for concurrency in (1, 16):
            await _run_for(1.0, concurrency, manager)  # warm the pool and caches
            samples: dict[str, list[float]] = {label: [] for label in configurations}
            order = list(configurations.items())
            for index in range(rounds):
                # Rotate who goes first, so none always runs on a warmer server.
                shift = index % len(order)
                for label, configuration in order[shift:] + order[:shift]:
                    with configuration():
                        samples[label].append(await _run_for(seconds, concurrency, manager))
                exporter.clear()
            medians = {label: statistics.median(values) for label, values in samples.items()}
            results[f"concurrency {concurrency}"] = {
                "none tx/s": medians["plain"],
                "no-op tx/s": medians["no-op"],
                "sdk tx/s": medians["sdk"],
                "control ratio": _paired_ratio(samples, "control"),
                "no-op ratio": _paired_ratio(samples, "no-op"),
                "sdk ratio": _paired_ratio(samples, "sdk"),
            }
    finally:
        async with manager.get_transaction() as session:
            await session.execute(text("DROP TABLE IF EXISTS bench_otel_rows"))
        await manager.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print("== what the plugin adds per transaction, without the database")
    for name, value in bench_hooks().items():
        print(f"  {name:48} {value:8.2f}")
    with database(args.url) as url:
        print("== Unit of Work transactions: one INSERT ... RETURNING + COMMIT each (asyncpg)")
        for label, row in asyncio.run(bench(url, args.seconds, args.rounds)).items():
            cells = "  ".join(f"{k} {v:8.2f}" for k, v in row.items())
            print(f"  {label:15} {cells}")


if __name__ == "__main__":
    main()
