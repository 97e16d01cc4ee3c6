"""sqlalchemy-foundation-kit 0.5.0's Unit of Work, driven by run.py from another environment.

This file runs with the Python of a throwaway virtual environment that holds
sqlalchemy-foundation-kit 0.5.0, SQLAlchemy 2.0 and asyncpg, and nothing of fkit. It
imports only those. run.py starts it once, keeps it alive for the whole benchmark (its pool is
emptied and warmed like everyone else's), and sends one JSON command per line on stdin:

    {"cmd": "run", "seconds": 1.0, "concurrency": 16}   -> {"tps": 1234.5}
    {"cmd": "release"}                                    -> {"ok": true}
    {"cmd": "quit"}                                       -> {"ok": true}

Usage (by run.py): python sfk_worker.py URL TABLE POOL_SIZE
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy_foundation_kit import (
    AsyncSessionManager,
    AsyncSQLAlchemyUnitOfWork,
    AsyncSQLAlchemyUowTransaction,
)


@dataclass(frozen=True)
class PoolSettings:
    """What the kit's PoolSettingsProtocol asks for (its pydantic model is an extra)."""

    kind: str
    size: int
    max_overflow: int
    pre_ping: bool
    recycle: int
    timeout: float


async def run_for(
    uow: AsyncSQLAlchemyUnitOfWork, insert: object, seconds: float, concurrency: int
) -> float:
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with uow.transaction() as tx:
                (await tx.session.execute(insert)).scalar_one()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


async def main() -> None:
    url, table, pool_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    insert = text(f"INSERT INTO {table} (note) VALUES ('x') RETURNING id")
    # The same pool as every other contender: fixed size, no overflow, no pre-ping.
    manager = AsyncSessionManager(
        url,
        poolclass="async_adapted_queue",
        pool_settings=PoolSettings(
            kind="async_adapted_queue",
            size=pool_size,
            max_overflow=0,
            pre_ping=False,
            recycle=-1,
            timeout=30.0,
        ),
    )
    uow = AsyncSQLAlchemyUnitOfWork(
        manager.session_maker, transaction_factory=AsyncSQLAlchemyUowTransaction
    )
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            if command["cmd"] == "release":
                await manager.engine.dispose()  # the pool reopens connections on use
                print(json.dumps({"ok": True}), flush=True)
                continue
            if command["cmd"] == "quit":
                print(json.dumps({"ok": True}), flush=True)
                break
            tps = await run_for(uow, insert, command["seconds"], command["concurrency"])
            print(json.dumps({"tps": tps}), flush=True)
    finally:
        await manager.aclose()


if __name__ == "__main__":
    asyncio.run(main())
