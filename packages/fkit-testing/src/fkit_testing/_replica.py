"""A hot-standby streaming replica of a throwaway server, and waiting for it to catch up."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fkit_testing._cluster import Cluster
from fkit_testing._errors import LauncherError, ReplayTimeoutError
from fkit_testing._launcher import PostgresServer

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Mapping, Sequence

    from fkit_testing._bindir import Prefer
    from fkit_testing._tools import SettingValue

__all__ = ["PostgresReplica", "ReplicaPair", "launch_replica", "launch_replica_pair"]

# A transaction that writes WAL (a transactional logical message) and commits with
# synchronous_commit = on waits until its commit record is flushed, which flushes all WAL
# before it too: commits made with synchronous_commit = off (the launcher's default) are
# then on disk, where the walsender sends them from. (A transaction that only takes an
# xid writes no WAL and commits asynchronously whatever the setting says.)
_FLUSHED_LSN_SQL = (
    "BEGIN; SET LOCAL synchronous_commit = on; "
    "SELECT pg_logical_emit_message(true, 'fkit-testing', 'wait_for_replay'); COMMIT; "
    "SELECT pg_current_wal_lsn()"
)
_POLL_INTERVAL = 0.01


def _lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class PostgresReplica(PostgresServer):
    """A hot-standby streaming replica of a running :class:`PostgresServer`.

    It is made with ``pg_basebackup --write-recovery-conf`` from the primary, started on
    its own free port with the primary's binaries and OS user, and removed with its
    files like any throwaway server: by :meth:`stop`, at the end of a ``with`` block, or
    by its reaper when this process dies. It refuses writes (SQLSTATE 25006). Start the
    primary with ``replication=True``.

    Args:
        primary: The running server to copy and stream from.
        settings: Extra ``postgresql.conf`` settings for the replica.
        base_dir: Where its temporary directory is created; default beside the primary's.
        startup_timeout: Seconds each of the copy and the start may take; default the
            primary's.

    Example:
        >>> with launch_postgres(replication=True) as primary:  # doctest: +SKIP
        ...     with PostgresReplica(primary) as replica:
        ...         primary.psql("create table t as select 1 as x")
        ...         replica.wait_for_replay()
        ...         replica.psql("select x from t")
        '1'
    """

    def __init__(
        self,
        primary: PostgresServer,
        *,
        settings: Mapping[str, SettingValue] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float | None = None,
    ) -> None:
        timeout = primary._timeout if startup_timeout is None else startup_timeout
        super().__init__(settings=settings, base_dir=base_dir, startup_timeout=timeout)
        self._primary = primary

    @property
    def primary(self) -> PostgresServer:
        """The server this replica streams from."""
        return self._primary

    def _create_cluster(self) -> Cluster:
        source = self._primary._running()
        base = Path(self._base_dir) if self._base_dir else source.directory.parent
        return Cluster.create(bindir=source.bindir, user=source.user, base=base.absolute())

    def _populate(self, state: Cluster) -> None:
        source = self._primary._running()
        try:
            state.basebackup(
                source_port=source.port, settings=self._settings, timeout=self._timeout
            )
        except LauncherError as exc:
            msg = (
                f"{exc}\nA primary for replicas needs wal_level = replica, free WAL senders "
                "and a replication entry in pg_hba.conf: start it with replication=True."
            )
            raise LauncherError(msg) from exc

    def replay_lsn(self) -> str:
        """The last WAL position (LSN) this replica has replayed, e.g. ``"0/3000148"``.

        Raises:
            LauncherError: The server is not running or is no longer in recovery.
        """
        replayed = self.psql("SELECT pg_last_wal_replay_lsn()")
        if not replayed:
            msg = f"{self!r} is not a standby any more (it was promoted); nothing is replayed"
            raise LauncherError(msg)
        return replayed

    def wait_for_replay(self, timeout: float = 30.0) -> str:
        """Wait until this replica has replayed everything committed on the primary so far.

        Every transaction the primary acknowledged before the call is then visible on the
        replica. The call blocks (usually for milliseconds), also in async tests.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            The primary's WAL position (LSN) that was waited for.

        Raises:
            ReplayTimeoutError: The replica did not get there within ``timeout``.
            LauncherError: The primary or the replica is not running.
        """
        deadline = time.monotonic() + timeout
        # psql 15+ prints every statement's result, older ones only the last.
        target = self._primary.psql(_FLUSHED_LSN_SQL).splitlines()[-1]
        while True:
            replayed = self.replay_lsn()
            if _lsn(replayed) >= _lsn(target):
                return target
            if time.monotonic() >= deadline:
                msg = (
                    f"{self!r} replayed WAL up to {replayed} but not to the primary's {target} "
                    f"within {timeout}s; see its log {self.log_path}"
                )
                raise ReplayTimeoutError(msg)
            time.sleep(_POLL_INTERVAL)


@contextlib.contextmanager
def launch_replica(
    primary: PostgresServer,
    *,
    settings: Mapping[str, SettingValue] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    startup_timeout: float | None = None,
) -> Iterator[PostgresReplica]:
    """Start a streaming replica of ``primary`` for the ``with`` block.

    See :class:`PostgresReplica`; the primary needs ``replication=True``.

    Raises:
        LauncherError: The replica could not be made, started or removed.
    """
    replica = PostgresReplica(
        primary, settings=settings, base_dir=base_dir, startup_timeout=startup_timeout
    )
    with replica:
        yield replica


@dataclass(frozen=True, slots=True)
class ReplicaPair:
    """A throwaway primary and its streaming replica, from :func:`launch_replica_pair`.

    Attributes:
        primary: The primary server (started with ``replication=True``).
        replica: Its hot-standby replica.
    """

    primary: PostgresServer
    replica: PostgresReplica

    @property
    def primary_url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres`` of the primary."""
        return self.primary.url

    @property
    def replica_url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres`` of the replica."""
        return self.replica.url

    def wait_for_replay(self, timeout: float = 30.0) -> str:
        """Wait until the replica shows everything committed on the primary so far.

        See :meth:`PostgresReplica.wait_for_replay`.
        """
        return self.replica.wait_for_replay(timeout)


@contextlib.contextmanager
def launch_replica_pair(
    *,
    bindir: str | os.PathLike[str] | None = None,
    prefer: Prefer | None = None,
    os_user: str | None = None,
    settings: Mapping[str, SettingValue] | None = None,
    replica_settings: Mapping[str, SettingValue] | None = None,
    initdb_args: Sequence[str] = (),
    base_dir: str | os.PathLike[str] | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[ReplicaPair]:
    """Start a primary (``replication=True``) and a streaming replica of it.

    Arguments are those of :class:`PostgresServer` for the primary, plus
    ``replica_settings`` for the replica. Both are removed when the block ends, the
    replica first.

    Example:
        >>> with launch_replica_pair() as pair:  # doctest: +SKIP
        ...     print(pair.primary_url, pair.replica_url)

    Raises:
        LauncherError: A server could not be started or removed.
    """
    primary = PostgresServer(
        bindir=bindir,
        prefer=prefer,
        os_user=os_user,
        settings=settings,
        initdb_args=initdb_args,
        base_dir=base_dir,
        startup_timeout=startup_timeout,
        replication=True,
    )
    with primary, launch_replica(primary, settings=replica_settings, base_dir=base_dir) as replica:
        yield ReplicaPair(primary, replica)
