"""Running PostgreSQL's command-line tools and reporting their failures."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import TYPE_CHECKING

from fkit_testing._errors import LauncherError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from fkit_testing._osuser import OsUser

__all__ = ["conf_lines", "free_port", "log_tail", "run_tool", "tool_env"]

SettingValue = str | int | float | bool


def tool_env() -> dict[str, str]:
    """Return the environment for PostgreSQL's tools.

    ``PG*`` variables of the caller (``PGSSLMODE``, ``PGOPTIONS``, ...) would leak into the
    throwaway server's tools, and English messages keep errors readable and greppable.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def log_tail(path: Path, *, lines: int = 30, start: int = 0) -> str:
    """Return the last ``lines`` lines of a log file from byte ``start`` on, or a note."""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            text = handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no server log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def run_tool(
    step: str,
    argv: Sequence[str],
    *,
    user: OsUser | None,
    timeout: float,
    log: Path | None = None,
    log_start: int = 0,
) -> subprocess.CompletedProcess[str]:
    """Run one of PostgreSQL's tools, as ``user`` when given.

    Args:
        step: What the call does, for the error message (``"initdb"``).
        argv: The command.
        user: The OS user to run it as, or ``None`` to run it as this process.
        timeout: Seconds before the call is abandoned.
        log: The server log whose tail belongs in the error message.
        log_start: Only log bytes from this offset on belong to this call.

    Raises:
        LauncherError: The tool failed or timed out; the message has its stderr and the
            server log's tail.
    """
    command = user.wrap(list(argv)) if user is not None else list(argv)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=tool_env(), timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LauncherError(
            _describe(step, argv, user, f"timed out after {timeout}s", log, log_start)
        ) from exc
    except OSError as exc:
        raise LauncherError(
            _describe(step, argv, user, f"could not run: {exc}", log, log_start)
        ) from exc
    if done.returncode != 0:
        output = done.stderr.strip() or done.stdout.strip() or "(no output)"
        outcome = f"exited with code {done.returncode}:\n{output}"
        raise LauncherError(_describe(step, argv, user, outcome, log, log_start))
    return done


def _describe(
    step: str,
    argv: Sequence[str],
    user: OsUser | None,
    outcome: str,
    log: Path | None,
    log_start: int,
) -> str:
    who = f" as OS user {user.name!r}" if user is not None else ""
    text = f"{step} failed{who}: `{' '.join(argv)}` {outcome}"
    if log is not None:
        text += f"\n--- server log ({log}) ---\n{log_tail(log, start=log_start)}"
    return text


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _conf_value(value: SettingValue) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def conf_lines(settings: Mapping[str, SettingValue]) -> str:
    """Render settings as ``postgresql.conf`` lines, quoting strings."""
    return "".join(f"{name} = {_conf_value(value)}\n" for name, value in settings.items())
