"""``/healthz`` follows the database: 503 while it refuses connections, 200 again after."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from fkit_demo.app import create_app

if TYPE_CHECKING:
    from fkit_core.settings import BasePostgresConfig


async def _refuse_connections(admin_url: str, database: str, refuse: bool) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        allow = "false" if refuse else "true"
        await conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allow}')
        if refuse:
            # And end the connections the service holds, so its pool must reconnect.
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_healthz_is_503_while_the_database_refuses_and_200_after(
    demo_config: BasePostgresConfig, demo_url: str, fkit_database_url: str
) -> None:
    database = make_url(demo_url).database
    assert database is not None
    app = create_app(demo_config, autoload=False)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://demo") as client,
    ):
        healthy = await client.get("/healthz")
        assert healthy.status_code == 200
        assert healthy.json()["healthy"] is True

        await _refuse_connections(fkit_database_url, database, refuse=True)
        try:
            # The first check meets its pooled connection gone; the next cannot reconnect.
            down = [await client.get("/healthz") for _ in range(2)]
        finally:
            await _refuse_connections(fkit_database_url, database, refuse=False)
        for response in down:
            assert response.status_code == 503
            body = response.json()
            assert body["healthy"] is False
        assert "not currently accepting connections" in down[1].json()["error"]

        again = await client.get("/healthz")
        assert again.status_code == 200


def test_an_unreachable_database_stops_the_start_with_one_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fkit_demo.__main__ import main

    # Port 1 on the loopback: nothing listens, the connect is refused at once.
    monkeypatch.setenv("FKIT_DB_URL", "postgresql+asyncpg://demo:s3cret-pw@127.0.0.1:1/demo")
    assert main(["--port", "0", "--settle-every", "0"]) == 1
    out, err = capsys.readouterr()
    assert "cannot use the database at postgresql+asyncpg://demo:***@127.0.0.1:1/demo" in err
    assert "could not connect to PostgreSQL" in err
    assert "unset FKIT_DB_URL" in err
    assert "Traceback" not in out + err
    assert "s3cret-pw" not in out + err
