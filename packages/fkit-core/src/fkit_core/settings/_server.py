"""How settings become PostgreSQL server settings: the one place for the string rules.

Both ways of applying them use this: the startup packet (asyncpg ``server_settings``,
psycopg ``options``) and, behind pgbouncer, ``set_config(..., true)`` per transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fkit_core.settings._config import BasePostgresConfig

__all__ = ["STARTUP_ONLY_SETTINGS", "libpq_options", "quote_search_path", "server_settings_for"]

STARTUP_ONLY_SETTINGS: Final = frozenset({"application_name"})
"""Settings pgbouncer accepts in the startup packet; everything else goes per transaction."""


def _milliseconds(seconds: float) -> str:
    return str(round(seconds * 1000))


def quote_search_path(schemas: Sequence[str]) -> str:
    """Render schema names as a ``search_path`` value, each one quoted as an identifier.

    Quoting every name keeps case and special characters literal, and is how PostgreSQL
    itself writes ``"$user"``.

    Args:
        schemas: Schema names, taken literally.

    Returns:
        For example ``"app", "public"``.
    """
    return ", ".join('"' + name.replace('"', '""') + '"' for name in schemas)


def server_settings_for(config: BasePostgresConfig) -> dict[str, str]:
    """The server settings a config asks for, as the strings PostgreSQL expects.

    Timeouts become whole milliseconds, ``jit`` becomes ``on``/``off`` (the top-level
    ``config.jit`` overrides ``config.query.jit``), ``search_path`` is quoted and
    comma-joined. Settings left at ``None`` are omitted, keeping the server's default.

    Args:
        config: A validated configuration.

    Returns:
        A fresh dict from setting name to value, in a fixed order.
    """
    query = config.query
    settings: dict[str, str] = {}
    if query.application_name is not None:
        settings["application_name"] = query.application_name
    for name, seconds in (
        ("statement_timeout", query.statement_timeout),
        ("lock_timeout", query.lock_timeout),
        ("idle_in_transaction_session_timeout", query.idle_in_transaction_session_timeout),
    ):
        if seconds is not None:
            settings[name] = _milliseconds(seconds)
    jit = config.jit if config.jit is not None else query.jit
    if jit is not None:
        settings["jit"] = "on" if jit else "off"
    if query.search_path is not None:
        settings["search_path"] = quote_search_path(query.search_path)
    return settings


def libpq_options(settings: dict[str, str]) -> str:
    r"""Render settings as a libpq ``options`` string of ``-c name=value`` switches.

    libpq splits ``options`` at whitespace unless escaped with a backslash, and reads
    ``\\`` as one backslash, so both are escaped in values.

    Args:
        settings: Setting names and values.

    Returns:
        For example ``-c statement_timeout=1500 -c search_path="a",\ "b"``.
    """
    switches = []
    for name, value in settings.items():
        escaped = value.replace("\\", "\\\\").replace(" ", "\\ ")
        switches.append(f"-c {name}={escaped}")
    return " ".join(switches)
