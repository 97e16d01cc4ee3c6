"""``fkit doctor``: can this process reach its database, and with what setup?"""

from __future__ import annotations

import asyncio
import platform
import sys

import sqlalchemy
from sqlalchemy import text

from fkit_core._manager import AsyncSessionManager
from fkit_core._version import VERSION
from fkit_core.cli._plugins import describe_plugins
from fkit_core.errors import FkitError
from fkit_core.settings import BasePostgresConfig

__all__ = ["doctor"]


def _print(line: str = "") -> None:
    print(line, flush=True)


async def _check(config: BasePostgresConfig, timeout: float) -> int:
    manager = AsyncSessionManager(config, name="doctor")
    try:
        report = await manager.health_report(timeout=timeout)
        if not report.healthy:
            _print(
                f"error: cannot connect to {config.masked_url()}: {report.error}\n"
                "Check the URL (--url or FKIT_DB_URL / FKIT_DB_CONNECTION__*), that the server "
                "is running, and that this host may connect."
            )
            return 1
        async with manager.get_session() as session:
            version = (await session.execute(text("SELECT version()"))).scalar_one()
        _print(f"server:   {version}")
        _print(f"health:   ok, {report.latency * 1000:.1f} ms")
        _print(f"pool:     {manager.engine.pool.status()}")
        loaded = ", ".join(p.name for p in manager.plugins) or "(none)"
        _print(f"set up:   {loaded}")
        return 0
    finally:
        await manager.close(timeout=timeout)


def doctor(url: str | None, timeout: float) -> int:
    """Print versions, masked settings, plugins, server version, pool state and health latency.

    Returns:
        0 when the database answered, 1 when it did not, 2 for unusable settings.
    """
    _print(
        f"fkit-core {VERSION}, SQLAlchemy {sqlalchemy.__version__}, "
        f"Python {platform.python_version()} ({sys.platform})"
    )
    try:
        config = BasePostgresConfig(url=url) if url else BasePostgresConfig()
    except FkitError as exc:
        _print(f"error: the settings are not usable: {exc}")
        return 2
    _print(f"url:      {config.masked_url()}")
    _print(f"settings: {config!r}")
    lines, _ = describe_plugins()
    _print("plugins:")
    for line in lines:
        _print(line)
    try:
        return asyncio.run(_check(config, timeout))
    except FkitError as exc:
        _print(f"error: {exc}")
        return 1
