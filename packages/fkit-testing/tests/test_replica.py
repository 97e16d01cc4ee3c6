"""Streaming replicas: they stream, refuse writes, can be waited for, and go away."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import asyncpg
import pytest

from fkit_core.errors import FkitError
from fkit_testing import (
    LauncherError,
    PostgresReplica,
    PostgresServer,
    ReplayTimeoutError,
    ReplicaPair,
    launch_replica,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


async def fetch(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.asyncio
async def test_pair_is_a_primary_and_a_hot_standby(fkit_replica_pair: ReplicaPair) -> None:
    pair = fkit_replica_pair
    assert isinstance(pair.replica, PostgresReplica)
    assert pair.replica.primary is pair.primary
    assert pair.primary_url == pair.primary.url
    assert pair.replica_url == pair.replica.url != pair.primary_url
    assert pair.replica.version == pair.primary.version
    assert await fetch(pair.primary_url, "select pg_is_in_recovery()") is False
    assert await fetch(pair.replica_url, "select pg_is_in_recovery()") is True
    # The replica's own socket directory, not the one copied from the primary.
    socket_dir = await fetch(pair.replica_url, "show unix_socket_directories")
    assert socket_dir == str(pair.replica.directory)
    assert await fetch(pair.primary_url, "show wal_level") == "replica"
    senders = await fetch(
        pair.primary_url, "select count(*) from pg_stat_replication where state = 'streaming'"
    )
    assert senders == 1


@pytest.mark.asyncio
async def test_committed_rows_show_up_after_wait_for_replay(
    fkit_replica_pair: ReplicaPair,
) -> None:
    pair = fkit_replica_pair
    primary = await asyncpg.connect(pair.primary_url)
    try:
        await primary.execute("create table streamed (n int primary key)")
        for n in range(1, 6):
            # The launcher's servers commit with synchronous_commit = off, so the commit
            # may not even be on the primary's disk when wait_for_replay is called.
            await primary.execute("insert into streamed values ($1)", n)
            target = pair.wait_for_replay()
            assert target.count("/") == 1
            seen = await fetch(pair.replica_url, "select array_agg(n order by n) from streamed")
            assert seen == list(range(1, n + 1))
    finally:
        await primary.execute("drop table if exists streamed")
        await primary.close()


@pytest.mark.asyncio
async def test_replica_refuses_writes(fkit_replica_pair: ReplicaPair) -> None:
    conn = await asyncpg.connect(fkit_replica_pair.replica_url)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError) as caught:
            await conn.execute("create table refused (n int)")
    finally:
        await conn.close()
    assert caught.value.sqlstate == "25006"


def test_wait_for_replay_times_out_while_replay_is_paused(
    fkit_replica_pair: ReplicaPair,
) -> None:
    primary = fkit_replica_pair.primary
    with launch_replica(primary) as replica:
        assert replica.primary is primary
        replica.psql("select pg_wal_replay_pause()")
        primary.psql("create table paused as select 1 as n")
        try:
            with pytest.raises(ReplayTimeoutError, match="replayed WAL up to") as caught:
                replica.wait_for_replay(timeout=0.3)
            assert isinstance(caught.value, FkitError)
            assert isinstance(caught.value, TimeoutError)
            assert replica.psql("select count(*) from pg_class where relname = 'paused'") == "0"
            replica.psql("select pg_wal_replay_resume()")
            replica.wait_for_replay()
            assert replica.psql("select n from paused") == "1"
        finally:
            primary.psql("drop table if exists paused")


def test_start_replica_and_stop_remove_everything(
    fkit_replica_pair: ReplicaPair, process_gone: Callable[[int], bool]
) -> None:
    primary = fkit_replica_pair.primary
    replica = primary.start_replica(settings={"work_mem": "8MB"})
    try:
        assert repr(replica).startswith("<PostgresReplica postgresql://")
        assert replica.psql("show work_mem") == "8MB"
        assert replica.psql("select pg_is_in_recovery()") == "t"
        pid, reaper, directory, port = (
            replica.pid,
            replica.reaper_pid,
            replica.directory,
            replica.port,
        )
        assert directory.parent == primary.directory.parent
    finally:
        replica.stop()
    assert repr(replica) == "<PostgresReplica not running>"
    assert process_gone(pid)
    assert process_gone(reaper)
    assert not directory.exists()
    assert port_closed(port)
    # The primary is untouched.
    assert primary.psql("select 1") == "1"


def test_replication_primary_settings(fkit_replica_pair: ReplicaPair) -> None:
    primary = fkit_replica_pair.primary
    assert primary.psql("show max_wal_senders") == "10"
    assert primary.psql("show wal_level") == "replica"
    rules = primary.psql(
        "select count(*) from pg_hba_file_rules where 'replication' = any(database) "
        "and '127.0.0.1' = address and auth_method = 'trust'"
    )
    assert int(rules) == 1


def test_replica_of_an_unfit_primary_explains_and_cleans_up(reachable_base: Path) -> None:
    unfit = {"wal_level": "minimal", "max_wal_senders": 0}
    with PostgresServer(settings=unfit, base_dir=reachable_base) as primary:
        with pytest.raises(LauncherError, match=r"pg_basebackup failed(.|\n)*replication=True"):
            primary.start_replica()
        # Only the primary's directory is left, until it stops too.
        assert list(reachable_base.iterdir()) == [primary.directory]
    assert list(reachable_base.iterdir()) == []


def test_replica_of_a_stopped_primary_is_an_error() -> None:
    with pytest.raises(LauncherError, match="not running"):
        PostgresReplica(PostgresServer()).start()
