"""Read replicas on a real primary + streaming replica (fkit-testing's launcher)."""

from __future__ import annotations

import socket
import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, BasePostgresConfig
from fkit_core.errors import ReadOnlyTransactionError
from fkit_core.events import Event, ReplicaFallback

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fkit_testing import ReplicaPair


def _url(url: str, driver: str) -> str:
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A port nothing listens on: a replica that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _manager(pair: ReplicaPair, driver: str, *replicas: str) -> AsyncSessionManager:
    config = BasePostgresConfig(
        url=_url(pair.primary_url, driver), replica_urls=[_url(r, driver) for r in replicas]
    )
    manager = AsyncSessionManager(config, plugins=[], autoload=False)
    return manager


async def _in_recovery(session: object) -> bool:
    return bool((await session.execute(text("SELECT pg_is_in_recovery()"))).scalar_one())  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_reads_go_to_replicas_in_turn_and_writes_to_the_primary(
    fkit_replica_pair: ReplicaPair, driver: str
) -> None:
    pair = fkit_replica_pair
    table = f"rep_{uuid.uuid4().hex[:8]}"
    async with _manager(pair, driver, pair.replica_url, pair.replica_url) as manager:
        uow = AsyncSQLAlchemyUnitOfWork(manager)
        async with uow.transaction() as tx:
            assert not await _in_recovery(tx.session)
            await tx.session.execute(text(f"CREATE TABLE {table} (v int)"))
            await tx.session.execute(text(f"INSERT INTO {table} VALUES (42)"))
        pair.wait_for_replay()
        engines = []
        for _ in range(4):
            async with uow.query(replica=True) as qx:
                assert await _in_recovery(qx.session)
                assert (await qx.session.execute(text(f"SELECT v FROM {table}"))).scalar_one() == 42
                engines.append(qx.session.info["fkit.engine_name"])
        assert engines == ["replica-1", "replica-2", "replica-1", "replica-2"]
        async with manager.get_session(role="replica") as session:
            assert await _in_recovery(session)
        with pytest.raises(ReadOnlyTransactionError):
            async with uow.query(replica=True) as qx:
                await qx.session.execute(text(f"INSERT INTO {table} VALUES (1)"))
        async with uow.query() as qx:  # replica=False: the primary
            assert not await _in_recovery(qx.session)
        async with uow.transaction() as tx:
            await tx.session.execute(text(f"DROP TABLE {table}"))


@pytest.mark.asyncio
async def test_a_down_replica_is_skipped(
    fkit_replica_pair: ReplicaPair, driver: str, dead_url: str
) -> None:
    pair = fkit_replica_pair
    async with _manager(pair, driver, dead_url, pair.replica_url) as manager:
        seen: list[Event] = []
        manager.bus.subscribe(ReplicaFallback, seen.append)
        uow = AsyncSQLAlchemyUnitOfWork(manager)
        for _ in range(3):
            async with uow.query(replica=True) as qx:
                assert await _in_recovery(qx.session)
                assert qx.session.info["fkit.engine_name"] == "replica-2"
        assert seen == []


@pytest.mark.asyncio
async def test_with_no_replica_reachable_reads_fall_back_to_the_primary(
    fkit_replica_pair: ReplicaPair, driver: str, dead_url: str
) -> None:
    async with _manager(fkit_replica_pair, driver, dead_url) as manager:
        seen: list[ReplicaFallback] = []
        manager.bus.subscribe(ReplicaFallback, seen.append)
        uow = AsyncSQLAlchemyUnitOfWork(manager)
        async with uow.query(replica=True) as qx:
            assert not await _in_recovery(qx.session)
            assert qx.session.info["fkit.engine_name"] == "primary"
        assert seen == [ReplicaFallback("default", ("replica-1",), "no replica is reachable")]
        # A health check that fails keeps it out; one that passes would bring it back.
        report = await manager.health_report(engine_name="replica-1", timeout=2)
        assert not report.healthy
        async with manager.get_session(role="replica") as session:
            assert not await _in_recovery(session)


@pytest.mark.asyncio
async def test_a_passing_health_check_brings_a_replica_back(
    fkit_replica_pair: ReplicaPair, driver: str
) -> None:
    pair = fkit_replica_pair
    async with _manager(pair, driver, pair.replica_url) as manager:
        manager._router.observe("replica-1", healthy=False)
        async with manager.get_session(role="replica") as session:
            assert not await _in_recovery(session)  # marked down: the primary serves
        assert (await manager.health_report(engine_name="replica-1")).healthy
        async with manager.get_session(role="replica") as session:
            assert await _in_recovery(session)
