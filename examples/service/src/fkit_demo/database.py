"""Which database the demo uses: ``FKIT_DB_URL``, or an embedded PostgreSQL for this run."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from fkit_core.settings import BasePostgresConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = ["database"]


@contextlib.contextmanager
def database(say: Callable[[str], None] = print) -> Iterator[BasePostgresConfig]:
    """The database settings for this run, telling on screen where the database is.

    With ``FKIT_DB_URL`` set, its settings (every ``FKIT_DB_*`` variable applies). Without
    it, a throwaway PostgreSQL started by ``fkit_testing.launch_postgres()`` in a new
    temporary directory, stopped and deleted when the block ends (a Ctrl-C included; if
    this process is killed outright, the launcher's reaper process does it).
    """
    if os.environ.get("FKIT_DB_URL"):
        config = BasePostgresConfig()
        shown = config.primary_url().render_as_string(hide_password=True)
        say(f"fkit-demo: using the database in FKIT_DB_URL: {shown}")
        yield config
        return

    from fkit_testing import launch_postgres

    say("fkit-demo: FKIT_DB_URL is not set, so starting an embedded PostgreSQL for this run ...")
    directory: Path | None = None
    try:
        with launch_postgres() as server:
            directory = server.directory
            say(
                f"fkit-demo: embedded PostgreSQL {server.version} is up "
                f"(pid {server.pid}) at {server.url}\n"
                f"fkit-demo:   binaries: {server.bindir}\n"
                f"fkit-demo:   data:     {server.data_dir}\n"
                f"fkit-demo:   it lives in the temporary directory {directory}, "
                "which is removed when fkit-demo exits"
            )
            try:
                yield BasePostgresConfig(url=server.url)
            finally:
                say("fkit-demo: stopping the embedded PostgreSQL ...")
    finally:
        if directory is not None and not directory.exists():
            say(f"fkit-demo: embedded PostgreSQL stopped; {directory} removed")
