from __future__ import annotations

import subprocess
import sys

import pytest

import fkit_testing


def test_public_names_are_pinned() -> None:
    assert fkit_testing.__all__ == [
        "AlembicSchema",
        "CapturedEvents",
        "DatabaseUnavailableError",
        "FakeAdvisoryLocks",
        "InMemoryRepository",
        "InMemoryTransaction",
        "InMemoryUnitOfWork",
        "LauncherError",
        "LockRecord",
        "PgBouncer",
        "PostgresReplica",
        "PostgresServer",
        "RecordingEventBus",
        "ReplayTimeoutError",
        "ReplicaPair",
        "Repository",
        "RepositoryContract",
        "UnitOfWorkContract",
        "UnitOfWorkFactory",
        "WorkerDatabase",
        "find_pgbouncer",
        "find_postgres_bindir",
        "launch_pgbouncer",
        "launch_postgres",
        "launch_replica",
        "launch_replica_pair",
    ]
    for name in fkit_testing.__all__:
        assert getattr(fkit_testing, name).__name__ == name
        assert name in dir(fkit_testing)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = fkit_testing.nope


@pytest.mark.parametrize(
    "module", ["fkit_testing.plugin", "fkit_testing._reaper", "fkit_testing._dbreaper"]
)
def test_cheap_modules_do_not_import_fkit_core(module: str) -> None:
    # pytest imports the plugin in every run, and the reapers start with every server and
    # every worker database.
    code = (
        f"import sys, {module}; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('fkit_core', 'sqlalchemy'));"
        "print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
