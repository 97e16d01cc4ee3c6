"""The fault proxy itself: it forwards, and each fault does what the scenarios rely on."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from fkit_faults_load import within
from fkit_faults_server import with_driver
from sqlalchemy import text

from fkit_core import AsyncSessionManager, BasePostgresConfig
from fkit_core.errors import ConnectionLostError
from fkit_core.settings import PoolSettings

if TYPE_CHECKING:
    from fkit_faults_proxy import FaultProxy

MARGIN = 10.0


@pytest.mark.asyncio
async def test_forward_cut_refuse_accept_delay_stall_resume(
    proxy: FaultProxy, fkit_database_url: str, driver: str
) -> None:
    url = with_driver(fkit_database_url, driver, port=proxy.port)
    config = BasePostgresConfig(url=url, pool=PoolSettings(size=2, max_overflow=0))
    async with AsyncSessionManager(config, plugins=[], autoload=False) as manager:

        async def one() -> int:
            async with manager.get_transaction() as session:
                return int((await session.execute(text("SELECT 1"))).scalar_one())

        # Forwards both ways.
        assert await one() == 1
        assert proxy.connections == 1
        assert proxy.accepted >= 1

        # cut(): the pooled connection is dead; the next transaction gets a fresh one.
        assert proxy.cut() == 1
        with pytest.raises(ConnectionLostError):
            await one()
        assert await one() == 1

        # refuse(): open connections keep working, new ones are refused.
        proxy.refuse()
        assert await one() == 1
        accepted = proxy.accepted
        proxy.cut()
        with pytest.raises(ConnectionLostError):
            await one()  # the dead pooled connection
        with pytest.raises(ConnectionLostError):
            await one()  # connecting anew is refused
        assert proxy.accepted == accepted
        await proxy.accept()
        assert await one() == 1

        # delay(): every chunk waits; a round trip cannot be quicker than the delay.
        proxy.delay(0.05)
        started = time.perf_counter()
        assert await one() == 1
        assert time.perf_counter() - started >= 0.05
        proxy.delay(0)

        # stall(): nothing moves (the health check gives up), resume(): it all goes on.
        proxy.stall()
        assert proxy.stalled
        assert not await manager.healthcheck(timeout=0.3)
        proxy.resume()
        task, _ = await within(MARGIN, "work after resume", one())
        assert task.result() == 1
        assert await manager.healthcheck()
