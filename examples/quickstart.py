"""A small service on fkit: settings, a started manager, plugins, events, transactions, health.

Run it with `uv run python examples/quickstart.py`. It uses the database in FKIT_DB_URL,
or starts a throwaway PostgreSQL (fkit-testing's launcher) and removes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING

from sqlalchemy import text

from fkit_core import AsyncSessionManager, BasePostgresConfig
from fkit_core.errors import UniqueViolationError
from fkit_core.events import Event, TransactionEnded

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def database_url() -> Iterator[str]:
    """The configured database, or a throwaway server for the length of the run."""
    if os.environ.get("FKIT_DB_URL"):
        yield os.environ["FKIT_DB_URL"]
        return
    from fkit_testing import launch_postgres

    with launch_postgres() as server:
        print(f"started a throwaway PostgreSQL {server.version} at {server.url}")
        yield server.url


async def run(url: str) -> None:
    config = BasePostgresConfig(url=url)
    ended: list[TransactionEnded] = []
    async with AsyncSessionManager(config, name="quickstart") as manager:

        def on_event(event: Event) -> None:
            if isinstance(event, TransactionEnded):
                ended.append(event)

        manager.bus.subscribe_all(on_event)
        print("plugins set up:", [p.name for p in manager.plugins] or "none")
        async with manager.get_transaction() as session:
            await session.execute(text("DROP TABLE IF EXISTS quickstart_users"))
            await session.execute(text("CREATE TABLE quickstart_users (email text PRIMARY KEY)"))
        async with manager.get_transaction() as session:
            await session.execute(text("INSERT INTO quickstart_users VALUES ('ada@example.org')"))
        try:
            async with manager.get_transaction() as session:
                await session.execute(
                    text("INSERT INTO quickstart_users VALUES ('ada@example.org')")
                )
        except UniqueViolationError as exc:
            print(f"duplicate refused: {type(exc).__name__} on {exc.constraint_name}")
        async with manager.get_transaction("serializable", readonly=True) as session:
            users = (
                await session.execute(text("SELECT count(*) FROM quickstart_users"))
            ).scalar_one()
        print("users:", users)
        report = await manager.health_report()
        print(f"healthy: {report.healthy} in {report.latency * 1000:.1f} ms")
        async with manager.get_transaction() as session:
            await session.execute(text("DROP TABLE quickstart_users"))
    print("transactions:", [f"{e.kind}:{e.outcome}" for e in ended])


def main() -> None:
    with database_url() as url:
        asyncio.run(run(url))


if __name__ == "__main__":
    main()
