"""The public API is pinned, importing is cheap, and the installed plugin is discovered."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import fkit_locks
from fkit_core import AsyncSessionManager, Plugin, discover_plugins
from fkit_core.errors import FkitError, LockNotAvailableError
from fkit_core.events import ManagerStarted
from fkit_locks import (
    LockError,
    LockKeyError,
    LockModeError,
    LockNotAcquiredError,
    LocksPlugin,
    SessionLockUnsupportedError,
    TableNameError,
    TableNotFoundError,
    TransactionRequiredError,
)

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_pinned_and_sorted() -> None:
    assert fkit_locks.__all__ == [
        "AcquiredLock",
        "AdvisoryLock",
        "AdvisoryXactLock",
        "KeyPart",
        "LockError",
        "LockKeyError",
        "LockKeyLike",
        "LockMode",
        "LockModeError",
        "LockModeLike",
        "LockNotAcquiredError",
        "LocksPlugin",
        "PostgresAdvisoryLockMixin",
        "SessionLockUnsupportedError",
        "TableLike",
        "TableLock",
        "TableNameError",
        "TableNotFoundError",
        "TransactionRequiredError",
        "__version__",
        "advisory_lock",
        "advisory_xact_lock",
        "lock_key",
        "lock_tables",
        "try_advisory_xact_lock",
    ]
    for name in fkit_locks.__all__:
        assert getattr(fkit_locks, name) is not None


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert fkit_locks.__version__ == pyproject["project"]["version"]
    assert pyproject["project"]["dependencies"] == ["fkit-core>=0.1,<0.2"]


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (LockKeyError, (LockError, ValueError)),
        (LockModeError, (LockError, ValueError)),
        (TableNameError, (LockError, ValueError)),
        (SessionLockUnsupportedError, (LockError, ValueError)),
        (TransactionRequiredError, (LockError, RuntimeError)),
        (LockNotAcquiredError, (LockError, LockNotAvailableError, TimeoutError)),
        (TableNotFoundError, (LockError, LookupError)),
    ],
)
def test_errors_derive_from_fkit_and_the_closest_builtin(
    error: type[Exception], bases: tuple[type[Exception], ...]
) -> None:
    assert issubclass(error, FkitError)
    for base in bases:
        assert issubclass(error, base)


def test_importing_starts_nothing_and_installs_no_listener() -> None:
    code = (
        "import sys\n"
        "from sqlalchemy import event\n"
        "from sqlalchemy.orm import Session\n"
        "from importlib.metadata import entry_points\n"
        "(ep,) = [e for e in entry_points(group='fkit.plugins') if e.name == 'locks']\n"
        "plugin = ep.load()\n"
        "from fkit_locks._events import _after_transaction_end\n"
        "assert not event.contains(Session, 'after_transaction_end', _after_transaction_end)\n"
        "assert 'asyncpg' not in sys.modules and 'psycopg' not in sys.modules\n"
        "print(plugin.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "locks"


def test_the_installed_plugin_is_discovered_under_the_name_locks() -> None:
    found = {p.name: p for p in discover_plugins()}
    entry = found["locks"]
    assert entry.distribution == "fkit-locks"
    assert entry.value == "fkit_locks._plugin:plugin"
    assert entry.error is None
    assert isinstance(entry.plugin, LocksPlugin)
    assert isinstance(entry.plugin, Plugin)


@pytest.mark.asyncio
async def test_installed_it_is_set_up_with_every_manager(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FKIT_DISABLED_PLUGINS", raising=False)
    monkeypatch.delenv("FKIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    started: list[ManagerStarted] = []
    manager = AsyncSessionManager(db_url, name="autoloaded")
    manager.bus.subscribe(ManagerStarted, started.append)
    async with manager:
        (plugin,) = [p for p in manager.plugins if p.name == "locks"]
        assert isinstance(plugin, LocksPlugin)
        assert plugin.is_set_up(manager)
        assert "locks" in started[0].plugins
    assert not plugin.is_set_up(manager)


@pytest.mark.asyncio
async def test_an_explicit_instance_is_the_one_set_up(db_url: str) -> None:
    mine = LocksPlugin()
    async with AsyncSessionManager(db_url, plugins=[mine], autoload=False) as manager:
        assert manager.plugins == (mine,)
        assert mine.is_set_up(manager)
        assert "managers=1" in repr(mine)
