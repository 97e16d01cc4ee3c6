"""fkit against its peers: one INSERT ... RETURNING + COMMIT per transaction, side by side.

    uv run --group bench python benchmarks/peers/run.py [--url URL] [--seconds 1] [--rounds 10]

Contenders, all on the same server, the same asyncpg driver and the same pool (16
connections, no overflow, no pre-ping), each with its own pool. Six pools of 16 would
take most of a default server's 100 connections, so each contender's pool is emptied
after its turn and refilled by an unmeasured warm-up run before the next one:

- raw asyncpg: ``asyncpg.create_pool``, ``conn.transaction()``, ``fetchval``;
- plain SQLAlchemy: ``async_sessionmaker`` and ``session.begin()``;
- fkit UoW, no plugins: ``AsyncSQLAlchemyUnitOfWork(manager).transaction()``;
- fkit UoW + fkit-metrics + fkit-otel with no tracer provider (OpenTelemetry's no-op
  tracer, what an application pays when it installs them but exports nothing);
- fkit UoW + fkit-metrics + fkit-otel on the SDK with an in-memory exporter (every span
  recorded; the exporter is emptied each round);
- sqlalchemy-foundation-kit 0.5.0's UoW, installed with SQLAlchemy 2.0 in a throwaway
  virtual environment of its own and driven in a subprocess (sfk_worker.py) that stays
  alive for the whole run (its pool is emptied and warmed the same way). If it cannot
  be installed, the output and the table say so.

Each transaction is one ``INSERT ... RETURNING id`` into an UNLOGGED table and a COMMIT.
Rounds rotate the order of the contenders at concurrency 1 and 16, so drift on the
machine hits all alike. The table shows each one's median throughput and the median,
over the rounds, of its throughput over plain SQLAlchemy's in the same round.

Writes benchmarks/peers/results.md, results.json and (with matplotlib, in the ``bench``
dependency group) results.png. The database is --url, else FKIT_TEST_DATABASE_URL, else
a throwaway server from fkit-testing's launcher. Numbers are ratios on whatever machine
runs them; the load average is printed and written with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, BasePostgresConfig
from fkit_core import PoolSettings as FkitPoolSettings
from fkit_metrics import PostgresMetrics
from fkit_otel import OtelPlugin

# The shared helpers live one folder up (benchmarks/benchlib.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import database, run_for

HERE = Path(__file__).resolve().parent
TABLE = f"bench_peers_rows_{os.getpid()}"
POOL = 16
SFK = "sqlalchemy-foundation-kit 0.5.0 UoW"
BASELINE = "SQLAlchemy AsyncSession"


class SfkWorker:
    """sqlalchemy-foundation-kit in its own venv, driven over stdin/stdout."""

    def __init__(self, python: str, url: str) -> None:
        self.python = python
        self.url = url
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self.python,
            str(HERE / "sfk_worker.py"),
            self.url,
            TABLE,
            str(POOL),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        await self._reply()

    async def _reply(self) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=120)
        if not line:
            raise RuntimeError("the sqlalchemy-foundation-kit worker exited")
        return dict(json.loads(line))

    async def run(self, seconds: float, concurrency: int) -> float:
        assert self.process is not None
        assert self.process.stdin is not None
        command = {"cmd": "run", "seconds": seconds, "concurrency": concurrency}
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()
        return float((await self._reply())["tps"])

    async def release(self) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(b'{"cmd": "release"}\n')
        await self.process.stdin.drain()
        await self._reply()

    async def close(self) -> None:
        if self.process is None or self.process.stdin is None:
            return
        with contextlib.suppress(Exception):
            self.process.stdin.write(b'{"cmd": "quit"}\n')
            await self.process.stdin.drain()
            await self._reply()
        await asyncio.wait_for(self.process.wait(), timeout=30)


def install_sfk(directory: str) -> tuple[str | None, str]:
    """A venv holding sqlalchemy-foundation-kit 0.5.0; (python, "") or (None, why not)."""
    uv = shutil.which("uv")
    if uv is None:
        return None, "uv is not on PATH"
    venv = os.path.join(directory, "sfk-venv")
    python = os.path.join(venv, "bin", "python")
    steps = [
        [uv, "venv", "--quiet", "--python", sys.executable, venv],
        [
            uv, "pip", "install", "--quiet", "--python", python,
            "sqlalchemy-foundation-kit==0.5.0", "sqlalchemy<2.1", "asyncpg",
        ],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            reason = (result.stderr or result.stdout).strip().splitlines()
            return None, f"`{' '.join(step[1:3])}` failed: {reason[-1] if reason else '?'}"
    check = subprocess.run(
        [
            python,
            "-c",
            "import sqlalchemy, sqlalchemy_foundation_kit; print(sqlalchemy.__version__)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        return None, f"import failed: {check.stderr.strip().splitlines()[-1]}"
    return python, f"SQLAlchemy {check.stdout.strip()} in its own venv"


def fkit_config(url: str) -> BasePostgresConfig:
    return BasePostgresConfig(url=url, pool=FkitPoolSettings(size=POOL, max_overflow=0))


Run = "Callable[[float, int], Awaitable[float]]"
Release = "Callable[[], Awaitable[None]]"


async def contenders(
    url: str,
    sfk_python: str | None,
    stack: contextlib.AsyncExitStack,
    exporter: InMemorySpanExporter,
) -> dict[str, tuple[Run, Release]]:
    """Each contender as ``run(seconds, concurrency) -> tx/s`` and ``release()``.

    ``release()`` closes the contender's pooled connections; the pool reopens them on use.
    """
    insert_sql = f"INSERT INTO {TABLE} (note) VALUES ('x') RETURNING id"
    insert = text(insert_sql)
    runs: dict[str, tuple[Run, Release]] = {}

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    # min_size=0: connections open on demand, as in the SQLAlchemy pools.
    pools = [await asyncpg.create_pool(dsn, min_size=0, max_size=POOL)]
    stack.push_async_callback(lambda: pools[0].close())

    async def raw() -> None:
        async with pools[0].acquire() as conn, conn.transaction():
            await conn.fetchval(insert_sql)

    async def raw_release() -> None:
        old = pools[0]
        pools[0] = await asyncpg.create_pool(dsn, min_size=0, max_size=POOL)
        await old.close()

    runs["raw asyncpg"] = (lambda s, c: run_for(s, c, lambda _: raw()), raw_release)

    engine = create_async_engine(url, pool_size=POOL, max_overflow=0)
    stack.push_async_callback(engine.dispose)
    maker = async_sessionmaker(engine, expire_on_commit=False)

    async def plain() -> None:
        async with maker() as session, session.begin():
            (await session.execute(insert)).scalar_one()

    runs[BASELINE] = (lambda s, c: run_for(s, c, lambda _: plain()), engine.dispose)

    def fkit_run(manager: AsyncSessionManager) -> tuple[Run, Release]:
        uow = AsyncSQLAlchemyUnitOfWork(manager)

        async def one() -> None:
            async with uow.transaction() as tx:
                (await tx.session.execute(insert)).scalar_one()

        # Engine.dispose() swaps in a fresh pool with the same listeners (the plugins').
        return (lambda s, c: run_for(s, c, lambda _: one()), manager.engine.dispose)

    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    fkit_setups: dict[str, list[Any]] = {
        "fkit UoW, no plugins": [],
        # No tracer provider is ever set in this process: the global one is a no-op.
        "fkit UoW + metrics + otel (no-op tracer)": [
            PostgresMetrics(registry=CollectorRegistry()),
            OtelPlugin(),
        ],
        "fkit UoW + metrics + otel (SDK, in-memory)": [
            PostgresMetrics(registry=CollectorRegistry()),
            OtelPlugin(tracer_provider=sdk),
        ],
    }
    for index, (label, plugins) in enumerate(fkit_setups.items()):
        manager = AsyncSessionManager(
            fkit_config(url), plugins=plugins, autoload=False, name=f"bench-{index}"
        )
        await manager.start()
        stack.push_async_callback(manager.close)
        runs[label] = fkit_run(manager)

    if sfk_python is not None:
        worker = SfkWorker(sfk_python, url)
        await worker.start()
        stack.push_async_callback(worker.close)
        runs[SFK] = (worker.run, worker.release)
    return runs


async def bench(
    url: str, seconds: float, rounds: int, sfk_python: str | None
) -> dict[int, dict[str, list[float]]]:
    warmup = min(seconds / 2, 0.5)
    exporter = InMemorySpanExporter()
    setup = create_async_engine(url)
    async with setup.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        await conn.execute(
            text(f"CREATE UNLOGGED TABLE {TABLE} (id bigserial PRIMARY KEY, note text)")
        )
    samples: dict[int, dict[str, list[float]]] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            runs = await contenders(url, sfk_python, stack, exporter)
            order = list(runs.items())
            for concurrency in (1, 16):
                samples[concurrency] = {label: [] for label in runs}
                for index in range(rounds):
                    # Rotate who goes first, so none always runs on a warmer server.
                    shift = index % len(order)
                    for label, (run, release) in order[shift:] + order[:shift]:
                        await run(warmup, concurrency)  # open the pool, warm the caches
                        samples[concurrency][label].append(await run(seconds, concurrency))
                        await release()
                    exporter.clear()
                    print(f"  concurrency {concurrency:2}: round {index + 1}/{rounds}", flush=True)
    finally:
        async with setup.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        await setup.dispose()
    return samples


def summarise(samples: dict[int, dict[str, list[float]]]) -> dict[int, dict[str, dict[str, float]]]:
    summary: dict[int, dict[str, dict[str, float]]] = {}
    for concurrency, by_label in samples.items():
        base = by_label[BASELINE]
        summary[concurrency] = {
            label: {
                "tps": statistics.median(values),
                "ratio": statistics.median(a / b for a, b in zip(values, base, strict=True)),
            }
            for label, values in by_label.items()
        }
    return summary


def markdown(
    summary: dict[int, dict[str, dict[str, float]]],
    facts: dict[str, str],
    sfk_note: str,
    labels: list[str],
) -> str:
    lines = [
        "| contender | tx/s, c=1 | vs SQLAlchemy, c=1 | tx/s, c=16 | vs SQLAlchemy, c=16 |",
        "|---|---:|---:|---:|---:|",
    ]
    for label in labels:
        if label == SFK and SFK not in summary[1]:
            lines.append(f"| {label} | not run: {sfk_note} | | | |")
            continue
        one, many = summary[1][label], summary[16][label]
        lines.append(
            f"| {label} | {one['tps']:,.0f} | {one['ratio']:.2f}x "
            f"| {many['tps']:,.0f} | {many['ratio']:.2f}x |"
        )
    header = [
        "One `INSERT ... RETURNING id` into an UNLOGGED table + COMMIT per transaction, asyncpg,",
        f"pool of {POOL} (no overflow, no pre-ping) for every contender. Median tx/s over the",
        "rounds, and the median of each round's ratio to plain SQLAlchemy.",
        "",
        *(f"- {key}: {value}" for key, value in facts.items()),
        "",
    ]
    return "\n".join(header + lines) + "\n"


def chart(summary: dict[int, dict[str, dict[str, float]]], labels: list[str], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "matplotlib is not installed, so no chart was drawn: "
            "run with `uv run --group bench ...` to get results.png"
        )
    present = [label for label in labels if label in summary[1]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for axis, concurrency in zip(axes, (1, 16), strict=True):
        values = [summary[concurrency][label]["tps"] for label in present]
        bars = axis.barh(present, values, color="#4c72b0")
        axis.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize=8)
        axis.set_title(f"concurrency {concurrency}")
        axis.set_xlabel("transactions per second (median)")
        axis.invert_yaxis()
    axes[1].set_yticklabels([])
    fig.suptitle("INSERT ... RETURNING + COMMIT per transaction (higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return f"chart written to {path}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fkit-peers-") as directory:
        print("== installing sqlalchemy-foundation-kit 0.5.0 in its own venv", flush=True)
        sfk_python, sfk_note = install_sfk(directory)
        print(f"  {'ok' if sfk_python else 'NOT INSTALLED'}: {sfk_note}", flush=True)
        with database(args.url) as raw_url:
            url = make_url(raw_url).set(drivername="postgresql+asyncpg")
            engine_url = url.render_as_string(hide_password=False)
            server = asyncio.run(_server_version(engine_url))
            print(f"== benchmarking on PostgreSQL {server}", flush=True)
            samples = asyncio.run(bench(engine_url, args.seconds, args.rounds, sfk_python))
    load_after = os.getloadavg()
    labels = [
        "raw asyncpg",
        BASELINE,
        "fkit UoW, no plugins",
        "fkit UoW + metrics + otel (no-op tracer)",
        "fkit UoW + metrics + otel (SDK, in-memory)",
        SFK,
    ]
    facts = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}",
        "server": f"PostgreSQL {server}",
        "libraries": f"SQLAlchemy {sqlalchemy.__version__}, asyncpg {asyncpg.__version__} "
        "(sqlalchemy-foundation-kit runs on the SQLAlchemy 2.0 it requires)",
        "load average (1, 5, 15 min) before": ", ".join(f"{v:.2f}" for v in load_before),
        "load average after": ", ".join(f"{v:.2f}" for v in load_after),
        "rounds": f"{args.rounds} of {args.seconds:g} s per contender and concurrency, "
        "order rotated",
        "sqlalchemy-foundation-kit": sfk_note if sfk_python else f"NOT RUN: {sfk_note}",
    }
    summary = summarise(samples)
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(summary, facts, sfk_note, labels)
    (args.out / "results.md").write_text("# Peer benchmark results\n\n" + table)
    (args.out / "results.json").write_text(
        json.dumps({"facts": facts, "summary": summary, "samples": samples}, indent=2) + "\n"
    )
    print()
    print(table)
    print(chart(summary, labels, args.out / "results.png"))


async def _server_version(url: str) -> str:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return str((await conn.execute(text("SHOW server_version"))).scalar_one())
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
