"""Alembic migrations run from async code, off the event loop: :func:`run_migrations`.

Alembic is synchronous, and an async ``env.py`` starts an event loop of its own, which
cannot run inside the application's. So the whole Alembic command runs in a worker
thread, and the database to migrate travels to ``env.py`` in ``Config.attributes`` (never
through the ini file, where a password would be written down and ``%`` would be read as
configparser interpolation).

Alembic is an optional dependency (``fkit-core[alembic]``), imported only when a
migration runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import quote

from fkit_core._translate import sqlstate_of
from fkit_core.errors import ConfigurationError, MigrationError, MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Callable

    from fkit_core._manager import AsyncSessionManager
    from fkit_core.settings import BasePostgresConfig

__all__ = ["CONFIG_ATTRIBUTE", "URL_ATTRIBUTE", "downgrade_migrations", "run_migrations"]

logger = logging.getLogger("fkit_core.migrations")

CONFIG_ATTRIBUTE: Final = "fkit_config"
"""``Config.attributes`` key holding the manager's :class:`BasePostgresConfig`."""

URL_ATTRIBUTE: Final = "fkit_url"
"""``Config.attributes`` key holding the primary's URL as a string, password included."""

Direction = Literal["upgrade", "downgrade"]

# Alembic keeps the running migration in module globals (alembic.context, alembic.op), so
# two runs in one process at once break each other: runs in a process take turns. Across
# processes, the env.py that `fkit migrations init` writes takes an advisory lock.
_ALEMBIC_LOCK = threading.Lock()


def _alembic_ini(alembic_ini: str | os.PathLike[str]) -> Path:
    path = Path(alembic_ini)
    if not path.is_file():
        raise ConfigurationError(
            f"alembic_ini: no file at {str(path)!r} (from {os.getcwd()!r}); give the path of "
            "an alembic.ini, or write one with `fkit migrations init DIR`"
        )
    return path.resolve()


def _scrub(message: str, config: BasePostgresConfig) -> str:
    # Defence in depth: driver and Alembic messages do not carry the URL, but a message
    # fkit writes must never show the password, whatever a revision's code raised.
    password = config.connection.password.get_secret_value()
    if password:
        for form in {password, quote(password, safe=""), quote(password)}:
            message = message.replace(form, "***")
    return message


def _run_alembic(
    direction: Direction,
    config: BasePostgresConfig,
    ini: Path,
    revision: str,
    cancelled: threading.Event,
) -> None:
    # Runs in the worker thread, import included: importing Alembic takes a while.
    try:
        from alembic import command
        from alembic.config import Config
    except ImportError as exc:
        raise MissingDependencyError("migrations", "fkit-core[alembic]") from exc
    alembic_config = Config(str(ini))
    alembic_config.attributes[CONFIG_ATTRIBUTE] = config
    alembic_config.attributes[URL_ATTRIBUTE] = config.primary_url().render_as_string(
        hide_password=False
    )
    with _ALEMBIC_LOCK:
        if cancelled.is_set():
            # Cancelled while waiting for its turn: nothing has started, so nothing runs.
            return
        if direction == "upgrade":
            command.upgrade(alembic_config, revision)
        else:
            command.downgrade(alembic_config, revision)


async def _run_in_thread(run: Callable[[threading.Event], None]) -> None:
    cancelled = threading.Event()
    task = asyncio.ensure_future(asyncio.to_thread(run, cancelled))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        cancelled.set()
        # A thread cannot be interrupted, and Alembic may be half-way through a
        # transaction: wait until it has committed or rolled back, so that whoever
        # cancelled finds the database settled and no thread still migrating.
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                continue
        if not task.cancelled() and task.exception() is not None:
            logger.warning("a cancelled alembic run failed: %s", type(task.exception()).__name__)
        raise


async def _migrate(
    direction: Direction,
    manager: AsyncSessionManager,
    alembic_ini: str | os.PathLike[str],
    revision: str,
) -> None:
    if not revision:
        raise ConfigurationError("revision: must not be empty; use 'head' for the latest")
    config = manager.config
    ini = _alembic_ini(alembic_ini)
    target = config.masked_url()
    logger.info("alembic %s %s on %s with %s", direction, revision, target, ini)
    try:
        await _run_in_thread(partial(_run_alembic, direction, config, ini, revision))
    except MissingDependencyError:
        raise
    except Exception as exc:
        sqlstate = sqlstate_of(exc)
        detail = f" (SQLSTATE {sqlstate})" if sqlstate else ""
        message = f"alembic {direction} to {revision!r} failed on {target} with {ini}{detail}: "
        raise MigrationError(_scrub(f"{message}{type(exc).__name__}: {exc}", config)) from exc
    logger.info("alembic %s %s on %s done", direction, revision, target)


async def run_migrations(
    manager: AsyncSessionManager,
    alembic_ini: str | os.PathLike[str],
    revision: str = "head",
) -> None:
    """Upgrade the manager's primary database with Alembic (``alembic upgrade <revision>``).

    Alembic runs in a worker thread, so the event loop keeps serving other tasks. The
    ``env.py`` finds the manager's settings in ``config.attributes["fkit_config"]`` and
    its URL, password included, in ``config.attributes["fkit_url"]``; nothing is written
    to any file. ``fkit migrations init`` writes an ``env.py`` that reads them. The
    manager does not need to be started.

    Runs in one process take turns (Alembic keeps its state in module globals); runs in
    different processes, such as several instances started at once, are serialized by an
    advisory lock that the generated ``env.py`` takes. Cancelling the awaiting task cannot
    stop Alembic mid-way: the call waits for it to commit or roll back, then raises
    ``CancelledError``.

    Args:
        manager: The session manager whose primary database is migrated.
        alembic_ini: Path of the ``alembic.ini``; a relative path is taken from the
            working directory.
        revision: The target: ``"head"``, ``"heads"``, a revision id, or a relative
            ``"+1"``.

    Raises:
        MissingDependencyError: Alembic is not installed (``fkit-core[alembic]``).
        ConfigurationError: There is no file at ``alembic_ini``, or ``revision`` is empty.
        MigrationError: Alembic or the database failed (the cause is chained). PostgreSQL
            rolls the run's DDL back, so the database is left as it was.
    """
    await _migrate("upgrade", manager, alembic_ini, revision)


async def downgrade_migrations(
    manager: AsyncSessionManager,
    alembic_ini: str | os.PathLike[str],
    revision: str,
) -> None:
    """Downgrade the manager's primary database (``alembic downgrade <revision>``).

    Runs like :func:`run_migrations`; there is no default target, on purpose.

    Args:
        manager: The session manager whose primary database is migrated.
        alembic_ini: Path of the ``alembic.ini``.
        revision: The target: a revision id, a relative ``"-1"``, or ``"base"`` for none.

    Raises:
        MissingDependencyError: Alembic is not installed (``fkit-core[alembic]``).
        ConfigurationError: There is no file at ``alembic_ini``, or ``revision`` is empty.
        MigrationError: Alembic or the database failed (the cause is chained).
    """
    await _migrate("downgrade", manager, alembic_ini, revision)
