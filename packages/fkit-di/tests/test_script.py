"""A plain script: the container started, used and stopped by hand, in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio

    from dependency_injector import containers, providers
    from sqlalchemy import text

    from fkit_core.settings import BasePostgresConfig
    from fkit_di import DatabaseContainer


    class Settings:
        def __init__(self) -> None:
            self.postgres = BasePostgresConfig()  # FKIT_DB_URL


    class Report:
        def __init__(self, uow) -> None:
            self.uow = uow

        async def run(self) -> int:
            async with self.uow.query() as qx:
                return (await qx.session.execute(text("SELECT 40 + 2"))).scalar_one()


    class AppContainer(containers.DeclarativeContainer):
        config = providers.Singleton(Settings)
        database = providers.Container(
            DatabaseContainer, postgres_config=config.provided.postgres, autoload=False
        )
        report = providers.Factory(Report, uow=database.uow)


    async def main() -> None:
        container = AppContainer()
        await container.init_resources()
        report = container.report()
        print("answer", await report.run())
        manager = container.database.session_manager()
        await container.shutdown_resources()
        print("manager", manager.state)


    asyncio.run(main())
    """
)


def test_a_plain_script_runs_and_stops_cleanly(db_url: str) -> None:
    env = {**os.environ, "FKIT_DB_URL": db_url}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["answer 42", "manager closed"]
    assert result.stderr == ""
